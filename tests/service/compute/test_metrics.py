"""Every metric type on the hand-made world (tests/service/compute/world.py), with values worked out on paper."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.compute.models import KeyResultContribution, KeyResultEvidence, KeyResultValue
from service.sync.repository import upsert_records
from tests.service.compute import world

MEETINGS = {"field": "activity_kind", "op": "eq", "value": "meeting"}


def kr(metric: dict[str, Any], *, target: float = 100, baseline: float = 0, **extra: Any) -> dict[str, Any]:
    return {"key": "kr", "title": "A key result", "metric": metric, "baseline": baseline, "target": target, **extra}


CASES: list[tuple[str, dict[str, Any], float | None, dict[str, float] | None]] = [
    # M1, M2, M3, R3; not the outsider's, the deleted, nor those outside the window
    ("count-meetings", {"type": "count", "of": "activities", "where": [MEETINGS]}, 4, {"u1": 2, "u2": 2}),
    (
        "distinct-accounts",  # K1, K2 (A1) and K3 (A3); A1 credited to K1's owner, who called first
        {
            "type": "count",
            "of": "activities",
            "distinct": "accounts",
            "where": [
                {"field": "direction", "op": "eq", "value": "outbound"},
                {"field": "activity_kind", "op": "eq", "value": "call"},
            ],
        },
        2,
        {"u1": 1, "u2": 1},
    ),
    ("distinct-contacts", {"type": "count", "of": "activities", "distinct": "contacts", "where": [MEETINGS]}, 3, None),
    (
        "related-account",
        {
            "type": "count",
            "of": "activities",
            "where": [MEETINGS, {"field": "account.account_type", "op": "eq", "value": "Prospect"}],
        },
        3,
        None,
    ),
    (
        "related-contact",  # M1, M3, R3, K2, K3, I2, I3 involve a CEO
        {"type": "count", "of": "activities", "where": [{"field": "contact.title", "op": "eq", "value": "CEO"}]},
        7,
        None,
    ),
    (
        "custom-field-on-account",  # activities on A1 (Key_Account__c true): M1, K1, K2, I2, R2, T1
        {"type": "count", "of": "activities", "where": [{"field": "account.custom.key_account", "op": "is_true"}]},
        6,
        None,
    ),
    (
        "raw-field",
        {"type": "count", "of": "activities", "where": [{"field": "account.raw.Key_Account__c", "op": "is_true"}]},
        6,
        None,
    ),
    (
        "any-of-contains",
        {
            "type": "count",
            "of": "activities",
            "where": [
                {
                    "any_of": [
                        {"field": "subject", "op": "contains", "value": "discovery"},
                        {"field": "subject", "op": "starts_with", "value": "DEMO"},
                    ]
                }
            ],
        },
        3,
        None,
    ),
    ("count-opportunities-created", {"type": "count", "of": "opportunities"}, 2, {"u1": 2}),
    ("sum-amount", {"type": "sum", "of": "opportunities", "field": "amount"}, 6000, {"u1": 6000}),
    (
        "sum-with-number-filter",
        {
            "type": "sum",
            "of": "opportunities",
            "field": "amount",
            "where": [{"field": "amount", "op": "gt", "value": 2000}],
        },
        5000,
        None,
    ),
    (
        "ratio-next-step",  # open team opportunities O1 (next step) and O2 (none)
        {
            "type": "ratio",
            "numerator": {
                "type": "count",
                "of": "opportunities",
                "date_field": "none",
                "where": [{"field": "is_closed", "op": "is_false"}, {"field": "next_step", "op": "is_set"}],
            },
            "denominator": {
                "type": "count",
                "of": "opportunities",
                "date_field": "none",
                "where": [{"field": "is_closed", "op": "is_false"}],
            },
        },
        0.5,
        {"u1": 1.0, "u2": 0.0},
    ),
    (
        "ratio-followed-by",  # M1 → O1, M3 → O3, R3 → O3; M2's account only has an older opportunity
        {
            "type": "ratio",
            "numerator": {
                "type": "count",
                "of": "activities",
                "where": [MEETINGS, {"followed_by": {"within_days": 60}}],
            },
            "denominator": {"type": "count", "of": "activities", "where": [MEETINGS]},
        },
        0.75,
        None,
    ),
    (
        "ratio-followed-by-short",  # within 15 days only M1 → O1 (5 days); O3 came 24.6 and 19.25 days later
        {
            "type": "ratio",
            "numerator": {
                "type": "count",
                "of": "activities",
                "where": [MEETINGS, {"followed_by": {"within_days": 15}}],
            },
            "denominator": {"type": "count", "of": "activities", "where": [MEETINGS]},
        },
        0.25,
        None,
    ),
    # waits 1 h, 3 h, 10 h, I4 pending 2 h, I5 unanswered 340 h
    ("response-share-within", {"type": "response_time", "statistic": "share_within", "within_hours": 4}, 0.5, None),
    # sorted 1, 2, 3, 10, 340 (n = 5): the median is the middle one; u1 has 1, 10, 340 → 10; u2 has 2 and 3 → an
    # even count, the mean of the two middle values (Excel's MEDIAN): 2.5
    ("response-median", {"type": "response_time", "statistic": "median"}, 3.0, {"u1": 10.0, "u2": 2.5}),
    # PERCENTILE.INC: h = (5 − 1) × 0.9 = 3.6 → x[3] + 0.6 × (x[4] − x[3]) = 10 + 0.6 × 330 = 208
    ("response-p90", {"type": "response_time", "statistic": "p90"}, 208.0, None),
    # h = 4 × 0.6 = 2.4 → x[2] + 0.4 × (x[3] − x[2]) = 3 + 0.4 × 7 = 5.8
    ("response-p60", {"type": "response_time", "statistic": "percentile", "percentile": 60}, 5.8, None),
    ("response-max", {"type": "response_time", "statistic": "max"}, 340.0, None),
    # by contact: I1 (C3) never answered on C3, I2 (C1) neither, I3 (C4) after 10 h, I5 has no contact
    ("response-by-contact-max", {"type": "response_time", "statistic": "max", "match": "contact"}, 868.0, None),
    ("manual-without-value", {"type": "manual"}, None, None),
]


@pytest.mark.parametrize(("metric", "expected", "contributions"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_metric_value(
    engine: Engine, metric: dict[str, Any], expected: float | None, contributions: dict[str, float] | None
) -> None:
    world.build(engine)
    mapping, _report = world.apply_and_compute(engine, world.mapping_text([kr(metric)]))
    with Session(engine) as session:
        value = session.get(KeyResultValue, (mapping.id, "kr"))
        assert value is not None
        if expected is None:
            assert value.value is None
            assert value.status == "no_data"
        else:
            assert value.value == pytest.approx(expected)
        if contributions is not None:
            stored = {
                c.owner_id: c.value
                for c in session.exec(
                    select(KeyResultContribution).where(KeyResultContribution.mapping_id == mapping.id)
                )
            }
            assert stored == pytest.approx(contributions)


def test_evidence_names_the_records_and_pairs(engine: Engine) -> None:
    world.build(engine)
    metrics = [
        kr({"type": "count", "of": "activities", "where": [MEETINGS]}),
        {**kr({"type": "response_time", "statistic": "median"}, baseline=72, target=4, direction="lower"), "key": "rt"},
        {**kr({"type": "response_time", "statistic": "share_within", "within_hours": 4}, target=1), "key": "rt-share"},
        {
            **kr(
                {
                    "type": "ratio",
                    "numerator": {"type": "count", "of": "activities", "where": [MEETINGS, {"followed_by": {}}]},
                    "denominator": {"type": "count", "of": "activities", "where": [MEETINGS]},
                },
                target=1,
            ),
            "key": "conv",
        },
    ]
    mapping, _ = world.apply_and_compute(engine, world.mapping_text(metrics))
    with Session(engine) as session:

        def evidence(key: str) -> set[tuple[str, str, str | None]]:
            rows = session.exec(
                select(KeyResultEvidence).where(
                    KeyResultEvidence.mapping_id == mapping.id, KeyResultEvidence.kr_key == key
                )
            )
            return {(e.part, e.record_id, e.related_id) for e in rows}

        assert evidence("kr") == {("counted", r, None) for r in ("M1", "M2", "M3", "R3")}
        assert evidence("rt") == {
            ("pair", "I1", "E1"),
            ("pair", "I2", "R2"),
            ("pair", "I3", "R3"),
            ("pair", "I4", None),
            ("pair", "I5", None),
        }
        # a second response time over the same inquiries reuses the evidence (one query for both)
        assert evidence("rt-share") == evidence("rt")
        # numerator rows name the opportunity each meeting turned into
        assert {(p, r, o) for p, r, o in evidence("conv") if p == "numerator"} == {
            ("numerator", "M1", "O1"),
            ("numerator", "M3", "O3"),
            ("numerator", "R3", "O3"),
        }


def test_sprint_window_counts_only_the_sprint(engine: Engine) -> None:
    world.build(engine)
    sprint = {"key": "s1", "name": "Sprint 1", "start": "2026-07-05", "end": "2026-07-07"}
    text = world.mapping_text(
        [kr({"type": "count", "of": "activities", "where": [MEETINGS]}, window={"sprint": "s1"})], sprints=[sprint]
    )
    mapping, _ = world.apply_and_compute(engine, text)
    with Session(engine) as session:
        value = session.get(KeyResultValue, (mapping.id, "kr"))
        assert value is not None
        assert value.value == 3  # M1, M2, M3 (Jul 5–7); R3 on Jul 12 is after the sprint
        assert value.expected == 1.0  # the sprint is over


def test_a_forward_is_no_answer_unless_the_file_says_internal_activities_answer(engine: Engine) -> None:
    """F1 forwards I5's account's e-mail to a colleague 1 h after I5 (HubSpot FORWARDED_EMAIL maps to internal):
    by default I5 stays unanswered (340 h, the longest wait); with internal_responses it was answered after 1 h and
    the longest wait is I3's 10 h."""
    connection_id = world.build(engine)
    forward = world._activity(
        "F1", "email", world.at(8, 1, 9), "u1", "A3", subject="Fwd: question", direction="internal"
    )
    with Session(engine) as session:
        upsert_records(session, [forward], connection_id=connection_id, crm_object="Task", seen_at=None)
        session.commit()
    metrics = [
        {**kr({"type": "response_time", "statistic": "max"}), "key": "by-default"},
        {**kr({"type": "response_time", "statistic": "max", "internal_responses": True}), "key": "internal"},
    ]
    mapping, _ = world.apply_and_compute(engine, world.mapping_text(metrics))
    with Session(engine) as session:
        default = session.get(KeyResultValue, (mapping.id, "by-default"))
        internal = session.get(KeyResultValue, (mapping.id, "internal"))
        assert default is not None and internal is not None
        assert (default.value, internal.value) == (pytest.approx(340.0), pytest.approx(10.0))


def test_what_an_inquiry_is_and_what_answers_it_are_the_file_s(engine: Engine) -> None:
    """J1, an inbound e-mail on A2 on 8/10 9:00, nobody answered by as_of (8/15 12:00): 5 days 3 h = 123 h.
    inquiry_kinds [email] measures it alone; the default (calls and e-mails) still has I5's 340 h as the longest.
    A response filter that leaves out "Call back" leaves I2 (7/11 8:00) without R2 and without any other answer by
    as_of (M6 on A1 is after it): 35 days 4 h = 844 h."""
    connection_id = world.build(engine)
    mail = world._activity("J1", "email", world.at(8, 10, 9), "u1", "A2", subject="Question", direction="inbound")
    with Session(engine) as session:
        upsert_records(session, [mail], connection_id=connection_id, crm_object="Task", seen_at=None)
        session.commit()
    no_call_back = [{"field": "subject", "op": "not_contains", "value": "Call back"}]
    metrics = [
        {**kr({"type": "response_time", "statistic": "max"}), "key": "default"},
        {**kr({"type": "response_time", "statistic": "max", "inquiry_kinds": ["email"]}), "key": "emails"},
        {**kr({"type": "response_time", "statistic": "max", "response": no_call_back}), "key": "filtered"},
    ]
    mapping, _ = world.apply_and_compute(engine, world.mapping_text(metrics))
    with Session(engine) as session:
        got = {k: session.get(KeyResultValue, (mapping.id, k)) for k in ("default", "emails", "filtered")}
        assert {k: (v.value, v.records) for k, v in got.items() if v is not None} == {
            "default": (pytest.approx(340.0), 6),
            "emails": (pytest.approx(123.0), 1),
            "filtered": (pytest.approx(844.0), 6),  # the same 6 inquiries, I2 now unanswered
        }


def test_each_percentile_reads_the_unanswered_inquiries_of_its_own_definition(engine: Engine) -> None:
    """Percentiles over the same inquiries share one read of the unanswered ones in a run; over other inquiries
    they must not. Customers' inquiries (A2): I1 answered after 1 h, I4 pending for 2 h → median (1 + 2) / 2 = 1.5.
    All inquiries: 1, 2, 3, 10, 340 → median 3, p90 208 (as above). Given the other definition's unanswered
    inquiries, the customers' median would be 2 (1 with 2 and 340) and the team's 2.5 (1, 2, 3, 10)."""
    customers = [{"field": "account.account_type", "op": "starts_with", "value": "Customer"}]
    world.build(engine)
    text = world.mapping_text(
        [
            kr({"type": "response_time", "statistic": "median"}, key="all-median"),
            kr({"type": "response_time", "statistic": "median", "inbound": customers}, key="customer-median"),
            kr({"type": "response_time", "statistic": "p90"}, key="all-p90"),
            kr({"type": "response_time", "statistic": "p90", "inbound": customers}, key="customer-p90"),
        ]
    )
    mapping, _report = world.apply_and_compute(engine, text)
    with Session(engine) as session:
        values = {
            v.kr_key: v.value
            for v in session.exec(select(KeyResultValue).where(KeyResultValue.mapping_id == mapping.id))
        }
    # customers' p90: h = (2 − 1) × 0.9 → 1 + 0.9 × (2 − 1) = 1.9
    assert values == pytest.approx({"all-median": 3.0, "customer-median": 1.5, "all-p90": 208.0, "customer-p90": 1.9})
