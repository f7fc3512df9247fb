"""The HubSpot sync end to end: the real hubspot-api-client over HTTPS on loopback → sandbox CRM, real database."""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.hubspot import mapping as hs_mapping
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_seed import IdMap, portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.crm.models import ActivityContact, CrmConnection
from service.dashboard.links import RecordLinks
from service.sync.service import run_sync
from tests import loopback
from tests.conftest import ANCHOR, fast_config
from tests.service.sync.helpers import local_rows

pytestmark = pytest.mark.slow  # every test syncs a sandbox portal of thousands of records, most of them several times

SIZES = {"seed": 11, "accounts": 25, "opportunities": 60, "activities": 1500}


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[tuple[SandboxServer, SandboxOrg, Any, IdMap]]:
    data = generate_org(anchor=ANCHOR, **SIZES)
    portal, ids = portal_from_org(data)
    org = SandboxOrg(data)
    with SandboxServer(org, portal=portal, cert_dir=tmp_path / "sandbox") as server:
        yield server, org, portal, ids


def hubspot_config(server: SandboxServer, **overrides: Any) -> HubSpotConfig:
    assert server.portal is not None
    values: dict[str, Any] = {
        "access_token": server.portal.access_token,
        "host": server.base_url,
        "ca_bundle": server.ca_path,
        "retry_wait_base": 0.01,
        "retry_wait_max": 0.05,
        "rate_limit_wait_max": 0.05,  # the planned 429s need no real window
        "max_attempts": 4,
        "timeout_seconds": 5,
        "close_date_pushes_property": "close_date_pushes",
        **overrides,
    }
    return HubSpotConfig(**values)


def sync_hubspot(engine: Engine, config: HubSpotConfig, *, full: bool = False):  # type: ignore[no-untyped-def]
    return run_sync(engine, HubSpotConnector(config), connection_name="sandbox", full=full)


def _links(engine: Engine, crm: str) -> dict[str, set[str]]:
    with Session(engine) as session:
        connection = session.execute(select(CrmConnection).where(CrmConnection.crm == crm)).scalar_one()
        rows = session.execute(select(ActivityContact).where(ActivityContact.connection_id == connection.id))
        links: dict[str, set[str]] = {}
        for link in rows.scalars():
            links.setdefault(link.activity_id, set()).add(link.contact_id)
        return links


ACTIVITY_FIELDS = (
    "activity_kind",
    "subject",
    "direction",
    "occurred_at",
    "due_at",
    "completed_at",
    "duration_seconds",
    "email_from",
    "email_to",
)
OPPORTUNITY_FIELDS = (
    "name",
    "stage",
    "amount",
    "currency",
    "probability",
    "close_date",
    "next_step",
    "is_closed",
    "is_won",
    "last_activity_date",
    "stage_entered_at",
    "is_deleted",
)


def test_hubspot_and_salesforce_give_the_same_canonical_records(engine: Engine, scenario: Any) -> None:
    server, org, portal, ids = scenario
    sf_report = run_sync(engine, SalesforceConnector(fast_config(server)), connection_name="sandbox")
    hs_report = sync_hubspot(engine, hubspot_config(server))
    assert sf_report.status == hs_report.status == "ok"

    def mapped(value: str | None) -> str | None:
        return ids.get(value) if value else None

    sf_activities = local_rows(engine, "activity", crm="salesforce")
    hs_activities = local_rows(engine, "activity", crm="hubspot")
    # every task and event, and every e-mail without a task (Email-to-Case: an e-mail engagement in HubSpot)
    taskless = [e for e in org.records("EmailMessage") if not e["ActivityId"]]
    assert taskless and {sf_activities[e["Id"]].direction for e in taskless} == {"inbound", "outbound"}
    assert (
        len(sf_activities) == len(hs_activities) == len(org.records("Task")) + len(org.records("Event")) + len(taskless)
    )
    sf_links, hs_links = _links(engine, "salesforce"), _links(engine, "hubspot")
    for sf_id, sf_row in sf_activities.items():
        hs_row = hs_activities[ids[sf_id]]
        for name in ACTIVITY_FIELDS:
            assert getattr(sf_row, name) == getattr(hs_row, name), f"activity {sf_id} {name}"
        assert (mapped(sf_row.owner_id), mapped(sf_row.account_id), mapped(sf_row.opportunity_id)) == (
            hs_row.owner_id,
            hs_row.account_id,
            hs_row.opportunity_id,
        ), f"activity {sf_id} links"
        # a HubSpot lead is a contact: an activity on a Salesforce lead is one on that contact there
        sf_people = sf_links.get(sf_id, set()) | ({sf_row.lead_id} if sf_row.lead_id else set())
        assert {ids[c] for c in sf_people} == hs_links.get(ids[sf_id], set())

    owners = {o.external_id: o.email for o in local_rows(engine, "owner", crm="salesforce").values()}
    hs_owners = {o.external_id: o.email for o in local_rows(engine, "owner", crm="hubspot").values()}
    per_rep = Counter((owners[a.owner_id], a.activity_kind) for a in sf_activities.values())
    assert per_rep == Counter((hs_owners[a.owner_id], a.activity_kind) for a in hs_activities.values())

    sf_deals = local_rows(engine, "opportunity", crm="salesforce")
    hs_deals = local_rows(engine, "opportunity", crm="hubspot")
    assert len(sf_deals) == len(hs_deals) == len(org.records("Opportunity"))
    for sf_id, sf_row in sf_deals.items():
        hs_row = hs_deals[ids[sf_id]]
        for name in OPPORTUNITY_FIELDS:
            assert getattr(sf_row, name) == getattr(hs_row, name), f"opportunity {sf_id} {name}"
        assert (mapped(sf_row.owner_id), mapped(sf_row.account_id)) == (hs_row.owner_id, hs_row.account_id)

    # leads: a Salesforce Lead is the HubSpot contact it was converted to, or a contact of its own while it is open
    sf_leads = local_rows(engine, "lead", crm="salesforce")
    hs_leads = local_rows(engine, "lead", crm="hubspot")
    assert len(sf_leads) == len(hs_leads) == len(org.records("Lead")) > 0
    converted = [lead.is_converted for lead in sf_leads.values()]
    assert any(converted) and not all(converted)
    for sf_id, sf_row in sf_leads.items():
        hs_id = ids[sf_row.contact_id] if sf_row.contact_id else ids[sf_id]
        hs_row = hs_leads[hs_id]
        for name in ("created_at", "name", "email", "company", "status", "is_converted", "converted_on"):
            assert getattr(sf_row, name) == getattr(hs_row, name), f"lead {sf_id} {name}"
        assert (mapped(sf_row.owner_id), mapped(sf_row.account_id), hs_id) == (
            hs_row.owner_id,
            hs_row.account_id,
            hs_row.contact_id,
        ), f"lead {sf_id} links"


def _inline_entries(portal: Any, stream: str, record_id: str, to_type: str) -> int:
    """How many entries a list page inlines for one record's associations of one type: one per link, one more for
    the primary company."""
    links = len(portal.associations(stream, record_id, to_type))
    primary = to_type == "companies" and stream in hs_mapping.PRIMARY_COMPANY_TYPE
    return links + (1 if primary and portal.primary_company(stream, record_id) is not None else 0)


def _minimum_first_sync(portal: Any) -> int:
    # owners (one page of up to 500 active ones, one of archived ones), pipelines, the deal properties check
    # (close_date_pushes_property), the account details (portal id and UI domain for record links: first sync only);
    # then one list call per 100 records, associations inline; a v4 batch read (1,000 ids) only for the records
    # whose inline list of a type goes past 100 entries
    calls = 5
    for stream in hs_mapping.OBJECT_STREAMS:
        records = portal.records(stream)
        calls += max(1, -(-len(records) // 100))
        for to_type in hs_mapping.ASSOCIATIONS.get(stream, ()):
            long = [r for r in records if _inline_entries(portal, stream, r["id"], to_type) > 100]
            calls += -(-len(long) // 1000)
    return calls


def test_first_and_second_sync_use_the_minimum_of_api_calls(engine: Engine, scenario: Any) -> None:
    server, _org, portal, _ids = scenario
    config = hubspot_config(server)
    portal.reset_stats()
    first = sync_hubspot(engine, config)
    assert first.api_calls == portal.api_calls_total == _minimum_first_sync(portal)

    portal.reset_stats()
    second = sync_hubspot(engine, config)
    assert sum(c.written for c in second.counts.values()) == 0
    objects = len(hs_mapping.OBJECT_STREAMS)
    # per object: one search and one archived listing; owners: the active and the archived listing (kept as
    # inactive owners, no deletion check); pipelines; the deal properties check
    assert not second.full
    assert second.api_calls == portal.api_calls_total == 2 * objects + 4


def test_archived_records_are_marked_deleted(engine: Engine, scenario: Any) -> None:
    server, _org, portal, _ids = scenario
    config = hubspot_config(server)
    sync_hubspot(engine, config)
    call = portal.records("calls")[0]["id"]
    deal = portal.records("deals")[0]["id"]
    portal.archive("calls", call)
    portal.archive("deals", deal)
    report = sync_hubspot(engine, config)
    assert report.counts["calls"].deleted == 1 and report.counts["deals"].deleted == 1
    assert local_rows(engine, "activity", crm="hubspot")[call].is_deleted
    assert local_rows(engine, "opportunity", crm="hubspot")[deal].is_deleted


def test_changes_are_found_by_search_on_the_next_run(engine: Engine, scenario: Any) -> None:
    server, _org, portal, _ids = scenario
    config = hubspot_config(server)
    sync_hubspot(engine, config)
    deal = portal.records("deals")[1]["id"]
    portal.update("deals", deal, {"amount": "424242", "hs_next_step": "Send the contract"})
    report = sync_hubspot(engine, config)
    assert report.counts["deals"].written == 1
    stored = local_rows(engine, "opportunity", crm="hubspot")[deal]
    assert (stored.amount, stored.next_step) == (424242.0, "Send the contract")


HUBSPOT_FAULTS = [
    pytest.param("rate_limit", {"policy": "TEN_SECONDLY_ROLLING"}, id="429-ten-secondly"),
    pytest.param("http", {"status": 502}, id="502"),
    pytest.param("drop", {}, id="dropped-connection"),
    pytest.param("latency", {"seconds": 1.5}, id="timeout", marks=pytest.mark.slow),  # waits out 1 s timeouts
]


@pytest.mark.parametrize(("kind", "params"), HUBSPOT_FAULTS)
def test_transient_faults_are_retried(engine: Engine, scenario: Any, kind: str, params: dict) -> None:
    server, _org, portal, _ids = scenario
    # the list calls: a first sync reads associations inline with them (and, prefetched, in a background thread)
    fault = portal.faults.add(kind, match="list", times=2, **params)
    report = sync_hubspot(engine, hubspot_config(server, timeout_seconds=1.0))
    assert report.status == "ok"
    assert fault.fired == 2
    assert len(local_rows(engine, "activity", crm="hubspot")) == sum(
        len(portal.records(e)) for e in hs_mapping.ENGAGEMENTS
    )


def test_the_daily_limit_stops_the_sync_with_a_clear_message(engine: Engine, scenario: Any) -> None:
    from connectors.errors import ApiLimitError

    server, _org, portal, _ids = scenario
    portal.faults.add("rate_limit", match="list", after=3, policy="DAILY")
    with pytest.raises(ApiLimitError, match="daily API limit is spent"):
        sync_hubspot(engine, hubspot_config(server))
    assert sync_hubspot(engine, hubspot_config(server)).status == "ok"


def test_invalid_token_is_refused_with_what_to_do(engine: Engine, scenario: Any) -> None:
    from connectors.errors import AuthenticationError

    server, *_ = scenario
    with pytest.raises(AuthenticationError, match="OKRSYNC_HUBSPOT__ACCESS_TOKEN") as caught:
        sync_hubspot(engine, hubspot_config(server, access_token="pat-wrong-token"))
    assert "pat-wrong-token" not in str(caught.value)


@pytest.mark.slow  # 10,300 records, searches paced at 5 a second
def test_more_than_10000_changes_in_one_window_and_in_one_timestamp(engine: Engine, tmp_path: Path) -> None:
    data = generate_org(anchor=ANCHOR, seed=3, accounts=10, opportunities=10, activities=200)
    portal, _ids = portal_from_org(data, search_per_second=50)
    with SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox") as server:
        config = hubspot_config(server, search_per_second=5)
        sync_hubspot(engine, config)
        contact = portal.records("contacts")[0]["id"]
        bulk = portal.now()
        for index in range(10_300):  # a bulk import: 10,300 calls sharing one timestamp…
            portal.insert(
                "calls",
                {
                    "hs_timestamp": "2026-09-01T10:00:00.000Z",
                    "hs_call_title": f"bulk {index}",
                    "hs_lastmodifieddate": bulk.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                },
                associations=[("contacts", contact)],
            )
        portal.reset_stats()
        report = sync_hubspot(engine, config)
        assert report.counts["calls"].written == 10_300
        stored = local_rows(engine, "activity", crm="hubspot")
        assert sum(1 for a in stored.values() if (a.subject or "").startswith("bulk ")) == 10_300
        # 200 per search page, keyset-paged: the first page is all one timestamp, so that timestamp is read by id
        # (10,300 / 200 = 52 pages), then one empty window after it; the other objects need one search each. The
        # offset paging before read 50 pages up to the 10,000 cap first and then all 10,300 again (103 searches).
        assert portal.api_calls["search"] == 1 + 52 + 1 + len(hs_mapping.OBJECT_STREAMS) - 1


@pytest.mark.slow  # waits out the portal's 10-second burst windows
def test_the_connector_paces_itself_under_the_burst_limit_instead_of_provoking_429(
    engine: Engine, tmp_path: Path
) -> None:
    data = generate_org(anchor=ANCHOR, **SIZES)
    portal, _ids = portal_from_org(data, burst_limit=24)
    with SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox") as server:
        used_before = portal.limits.daily_used
        report = sync_hubspot(engine, hubspot_config(server))
        assert report.api_calls > 24, "the sync needs more calls than one 10-second window allows"
        # refused requests do not count against the daily allowance: every call made was admitted
        assert portal.limits.daily_used - used_before == portal.api_calls_total == report.api_calls


def test_a_crash_mid_sync_resumes_without_loss(engine: Engine, scenario: Any) -> None:
    from connectors.errors import FatalError

    server, _org, portal, _ids = scenario
    config = hubspot_config(server)
    portal.faults.add("http", match="list", after=12, status=400, message="boom")
    with pytest.raises(FatalError):
        sync_hubspot(engine, config)
    assert sync_hubspot(engine, config).status == "ok"
    stored = local_rows(engine, "activity", crm="hubspot")
    expected = {r["id"] for e in hs_mapping.ENGAGEMENTS for r in portal.records(e)}
    assert {i for i, row in stored.items() if not row.is_deleted} == expected


def test_missing_scope_is_repeated_to_the_user(engine: Engine, scenario: Any) -> None:
    from connectors.errors import AuthenticationError

    server, _org, portal, _ids = scenario
    body = {
        "status": "error",
        "message": "This app hasn't been granted all required scopes to make this call.",
        "category": "MISSING_SCOPES",
        "errors": [
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": ["crm.objects.deals.read"]},
            }
        ],
    }
    portal.faults.add("http", match="list", status=403, body=body)
    with pytest.raises(AuthenticationError, match="add scope crm.objects.deals.read to the private app"):
        sync_hubspot(engine, hubspot_config(server))


def test_deal_in_a_deleted_pipeline_and_engagement_without_associations(engine: Engine, scenario: Any) -> None:
    server, _org, portal, _ids = scenario
    config = hubspot_config(server)
    sync_hubspot(engine, config)
    deal = portal.records("deals")[2]["id"]
    portal.update("deals", deal, {"dealstage": "stage-of-a-deleted-pipeline"})
    lonely = portal.insert("notes", {"hs_timestamp": "2026-09-02T08:00:00.000Z", "hs_note_body": "call back"})
    report = sync_hubspot(engine, config)
    assert report.counts["deals"].skipped == 1
    with Session(engine) as session:
        from service.sync.models import SyncSkip

        skip = session.execute(select(SyncSkip).where(SyncSkip.external_id == deal)).scalar_one()
    assert "stage-of-a-deleted-pipeline" in skip.reason and "deleted pipeline" in skip.reason
    note = local_rows(engine, "activity", crm="hubspot")[lonely["id"]]
    assert (note.activity_kind, note.account_id, note.opportunity_id) == ("note", None, None)


def test_associations_added_and_removed_between_runs(engine: Engine, scenario: Any) -> None:
    server, _org, portal, _ids = scenario
    config = hubspot_config(server)
    sync_hubspot(engine, config)
    call = portal.records("calls")[0]
    deal = portal.records("deals")[0]
    old_contacts = [str(i) for i, _type in portal.associations("calls", call["id"], "contacts")]
    new_contact = next(c["id"] for c in portal.records("contacts") if c["id"] not in old_contacts)
    deal_contacts = [str(i) for i, _type in portal.associations("deals", deal["id"], "contacts")]
    portal.unassociate("calls", call["id"], "contacts", old_contacts[0])
    portal.associate("calls", call["id"], "contacts", new_contact)
    portal.unassociate("deals", deal["id"], "contacts", deal_contacts[0])

    sync_hubspot(engine, config, full=True)
    links = _links(engine, "hubspot")
    assert new_contact in links[call["id"]] and old_contacts[0] not in links[call["id"]]
    roles = local_rows(engine, "opportunity_contact", crm="hubspot")
    assert roles[f"{deal['id']}:{deal_contacts[0]}"].is_deleted
    assert all(not roles[f"{deal['id']}:{c}"].is_deleted for c in deal_contacts[1:])


def test_an_unknown_custom_property_stops_the_sync_naming_it(engine: Engine, scenario: Any) -> None:
    from connectors.errors import ConfigurationError

    server, _org, portal, _ids = scenario
    config = hubspot_config(server, custom_properties={"deals": ["segment", "forecast_notes"]})
    with pytest.raises(ConfigurationError, match="no deals property forecast_notes.*CUSTOM_PROPERTIES"):
        sync_hubspot(engine, config)
    assert local_rows(engine, "opportunity", crm="hubspot") == {}

    config = hubspot_config(server, custom_properties={"deals": ["segment"]})
    assert sync_hubspot(engine, config).status == "ok"
    deal = portal.records("deals")[0]
    assert (
        local_rows(engine, "opportunity", crm="hubspot")[deal["id"]].raw["properties"]["segment"]
        == (deal["properties"]["segment"])
    )


@pytest.mark.slow  # 10,300 records, searches paced at 5 a second
def test_more_than_10000_changes_with_distinct_timestamps_in_one_window(engine: Engine, tmp_path: Path) -> None:
    from datetime import timedelta

    data = generate_org(anchor=ANCHOR, seed=3, accounts=10, opportunities=10, activities=200)
    portal, _ids = portal_from_org(data, search_per_second=50)
    with SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox") as server:
        config = hubspot_config(server, search_per_second=5)
        sync_hubspot(engine, config)
        start = portal.now()
        for index in range(10_250):  # an import spread over time: every record its own millisecond
            stamp = start + timedelta(milliseconds=index)
            portal.insert(
                "emails",
                {
                    "hs_timestamp": "2026-09-01T10:00:00.000Z",
                    "hs_email_subject": f"import {index}",
                    "hs_lastmodifieddate": stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                },
            )
        report = sync_hubspot(engine, config)
        assert report.counts["emails"].written == 10_250
        stored = local_rows(engine, "activity", crm="hubspot")
        assert sum(1 for a in stored.values() if (a.subject or "").startswith("import ")) == 10_250


def test_a_record_with_more_than_500_associations_is_followed_page_by_page(engine: Engine, scenario: Any) -> None:
    server, _org, portal, _ids = scenario
    company = portal.records("companies")[0]["id"]
    contacts = [portal.insert("contacts", {"firstname": f"C{i}", "lastname": "Many"})["id"] for i in range(520)]
    meeting = portal.insert(
        "meetings",
        {"hs_timestamp": "2026-09-03T09:00:00.000Z", "hs_meeting_title": "Town hall"},
        associations=[("companies", company), *[("contacts", c) for c in contacts]],
    )
    sync_hubspot(engine, hubspot_config(server))
    assert _links(engine, "hubspot")[meeting["id"]] == set(contacts)
    assert portal.api_calls["assoc_list"] >= 1


def _connection(engine: Engine) -> CrmConnection:
    with Session(engine, expire_on_commit=False) as session:
        return session.execute(select(CrmConnection).where(CrmConnection.crm == "hubspot")).scalar_one()


def _record_links(engine: Engine, ids: list[str]) -> dict[str, str | None]:
    with Session(engine) as session:
        links = RecordLinks(session, _connection(engine))
        links.load(ids)
        return {i: links.link(i).url for i in ids}


def test_the_first_sync_learns_the_portals_record_pages_and_the_links_open(engine: Engine, scenario: Any) -> None:
    server, _org, portal, _ids = scenario
    sync_hubspot(engine, hubspot_config(server))
    host = httpx.URL(server.base_url).netloc.decode()
    base = f"https://{host}/contacts/{portal.portal_id}"
    assert _connection(engine).instance_url == base

    deal, company = portal.records("deals")[0], portal.records("companies")[0]
    meeting = portal.records("meetings")[0]["id"]
    links = _record_links(engine, [deal["id"], company["id"], meeting])
    assert links == {deal["id"]: f"{base}/record/0-3/{deal['id']}", company["id"]: f"{base}/record/0-2/{company['id']}",
                     meeting: None}  # fmt: skip
    with loopback.client(verify=ssl.create_default_context(cafile=server.ca_path), trust_env=False) as browser:
        opened = browser.get(links[deal["id"]] or "")
        assert opened.status_code == 200 and opened.json()["id"] == deal["id"]
        assert opened.json()["properties"]["dealname"] == deal["properties"]["dealname"]
        assert browser.get(f"https://{host}/contacts/{portal.portal_id + 1}/record/0-3/{deal['id']}").status_code == 404

    portal.reset_stats()  # the portal does not move: later syncs do not ask again
    sync_hubspot(engine, hubspot_config(server))
    assert "account_details" not in portal.api_calls and _connection(engine).instance_url == base


def test_a_refused_account_details_call_leaves_records_unlinked_not_the_sync_failed(
    engine: Engine, scenario: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, _org, portal, _ids = scenario
    portal.faults.add("http", match="account_details", status=403, message="This app hasn't been granted all scopes")
    report = sync_hubspot(engine, hubspot_config(server))
    deal = portal.records("deals")[0]["id"]
    assert report.status == "ok" and _connection(engine).instance_url is None
    assert _record_links(engine, [deal]) == {deal: None}
    assert "no HubSpot record links: HubSpot refused account details" in caplog.text
    assert portal.access_token not in caplog.text

    sync_hubspot(engine, hubspot_config(server))  # allowed again: the next sync fills it in
    assert _record_links(engine, [deal]) == {deal: f"https://{httpx.URL(server.base_url).netloc.decode()}/contacts/"
                                             f"{portal.portal_id}/record/0-3/{deal}"}  # fmt: skip
