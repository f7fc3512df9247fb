"""HubSpotPortal state, the generator and the search matcher, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.sandbox.hubspot_generator import generate_portal
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_search import SearchError, matcher, ordered

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
KINDS = ("deals", "companies", "contacts", "calls", "emails", "meetings", "notes", "tasks")


def test_generator_is_deterministic_and_hubspot_shaped() -> None:
    first = generate_portal(anchor=ANCHOR, companies=20, deals=50, engagements=2000, seed=7)
    second = generate_portal(anchor=ANCHOR, companies=20, deals=50, engagements=2000, seed=7)
    other = generate_portal(anchor=ANCHOR, companies=20, deals=50, engagements=2000, seed=8)
    for kind in KINDS:
        assert first.records(kind) == second.records(kind)
    assert first.owners == second.owners
    assert first.records("deals") != other.records("deals")
    counts = {kind: len(first.records(kind)) for kind in KINDS[3:]}
    assert sum(counts.values()) == 2000 and counts["calls"] > counts["emails"] > counts["meetings"] > counts["notes"]
    for kind in KINDS:
        for row in first.records(kind):
            assert all(value is None or isinstance(value, str) for value in row["properties"].values())
            assert row["createdAt"].endswith("Z") and len(row["createdAt"]) == 24
    call = first.records("calls")[0]
    assert call["properties"]["hs_call_direction"] in ("INBOUND", "OUTBOUND")
    assert first.associations("calls", call["id"], "contacts") and first.associations("calls", call["id"], "companies")
    company = first.records("companies")[0]
    assert 2 <= len(first.associations("companies", company["id"], "contacts")) <= 5
    assert company["properties"]["key_account"] in ("true", "false")


def test_update_archive_and_symmetric_associations() -> None:
    portal = HubSpotPortal()
    company = portal.insert("companies", {"name": "Acme", "annualrevenue": 1000})
    deal = portal.insert("deals", {"dealname": "Acme - Pilot"}, associations=[("companies", company["id"])])
    assert company["properties"]["annualrevenue"] == "1000"
    assert portal.associations("companies", company["id"], "deals") == [(int(deal["id"]), 342)]
    assert portal.associations("deals", deal["id"], "companies") == [(int(company["id"]), 341)]
    stamp = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
    contact = portal.insert("contacts", {"email": "a@acme.example"})
    updated = portal.update("contacts", contact["id"], {"jobtitle": "CEO"}, modified_at=stamp)
    assert updated["properties"]["lastmodifieddate"] == updated["updatedAt"] == "2026-10-01T08:00:00.000Z"
    portal.archive("deals", deal["id"])
    assert portal.records("deals") == [] and portal.records("deals", archived=True)[0]["archivedAt"]
    archived = portal.records("deals", archived=True)[0]
    assert archived["properties"]["hs_lastmodifieddate"] == deal["properties"]["hs_lastmodifieddate"]


def _row(record_id: int, **properties: str | None) -> dict:
    return {"id": str(record_id), "properties": {"hs_object_id": str(record_id), **properties}}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"propertyName": "amount", "operator": "GT", "value": "150"}], ["2", "3"]),
        ([{"propertyName": "amount", "operator": "BETWEEN", "value": "100", "highValue": "200"}], ["1", "2"]),
        ([{"propertyName": "dealstage", "operator": "IN", "values": ["closedwon", "CONTRACTSENT"]}], ["1", "3"]),
        ([{"propertyName": "dealstage", "operator": "NEQ", "value": "closedwon"}], ["2", "3", "4"]),
        ([{"propertyName": "amount", "operator": "NOT_HAS_PROPERTY"}], ["4"]),
        ([{"propertyName": "hs_object_id", "operator": "LTE", "value": "2"}], ["1", "2"]),
        (
            [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1782864000000"}],  # 2026-07-01
            ["2", "3"],
        ),
        (
            [{"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": "2026-07-01T00:00:00.000Z"}],
            ["1"],
        ),
    ],
    ids=["gt", "between", "in", "neq", "not-has", "object-id", "epoch-ms", "iso"],
)
def test_search_filters(filters: list[dict], expected: list[str]) -> None:
    rows = [
        _row(1, amount="100", dealstage="closedwon", hs_lastmodifieddate="2026-06-30T23:59:59.999Z"),
        _row(2, amount="200", dealstage="qualifiedtobuy", hs_lastmodifieddate="2026-07-01T00:00:00.000Z"),
        _row(3, amount="1000", dealstage="contractsent", hs_lastmodifieddate="2026-08-01T00:00:00.000Z"),
        _row(4, amount=None, dealstage="closedlost", hs_lastmodifieddate=None),
    ]
    match = matcher([{"filters": filters}])
    assert [row["id"] for row in rows if match(row["properties"])] == expected


def test_sorting_keeps_ties_in_id_order_and_missing_values_last() -> None:
    rows = [_row(3, amount="5"), _row(1, amount="5"), _row(2, amount=None), _row(10, amount="7")]
    assert [row["id"] for row in ordered(rows, [{"propertyName": "amount", "direction": "DESCENDING"}])] == [
        "10",
        "1",
        "3",
        "2",
    ]
    assert [row["id"] for row in ordered(rows, ["amount"])] == ["1", "3", "10", "2"]
    with pytest.raises(SearchError):
        matcher([{"filters": [{"propertyName": "amount", "operator": "LIKE", "value": "1"}]}])
