"""Hygiene rules and KAM criteria on the hand-made world (as of 2026-08-15 12:00; open team opportunities O1, O2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.compute import report
from service.compute.models import HygieneSummary, KamAccountScore, KamCriterionResult, KeyResultValue
from service.compute.repository import COMPUTE_CACHE_KIB, COMPUTE_TEMP_CACHE_KIB
from service.compute.service import compute
from service.okrs import service as okrs
from tests.service.compute import world

STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review"]
COUNT_KR = {"key": "kr", "title": "Meetings", "metric": {"type": "count", "of": "activities"}, "target": 10}

RULES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("close-date-past", {"type": "close_date_past"}, {"O1": "Close date 2026-08-01 is 14 days in the past"}),
    ("close-date-past-grace", {"type": "close_date_past", "grace_days": 20}, {}),
    ("no-next-step", {"type": "no_next_step"}, {"O2": "No next step"}),
    (
        "no-activity",
        {"type": "no_activity", "days": 21},
        {"O1": "No activity for 43 days (last: 2026-07-03; limit 21 days)", "O2": "No activity logged"},
    ),
    ("no-activity-long", {"type": "no_activity", "days": 60}, {"O2": "No activity logged"}),
    (
        "stuck-in-stage",
        {"type": "stuck_in_stage", "days": 30},
        {
            "O1": "In stage Qualification for 36 days (limit 30 days)",
            "O2": "In stage Proposal/Price Quote for 75 days (limit 30 days)",
        },
    ),
    (
        "stuck-in-stage-long",
        {"type": "stuck_in_stage", "days": 40},
        {"O2": "In stage Proposal/Price Quote for 75 days (limit 40 days)"},
    ),
    # each stage holds one open opportunity: nobody is slower than 1.5× their own stage's median
    ("stuck-vs-median", {"type": "stuck_in_stage", "median_factor": 1.5}, {}),
    (
        "close-date-pushed",
        {"type": "close_date_pushed", "times": 3},
        {"O2": "Close date pushed 3 times (flagged from 3)"},
    ),
    (
        "missing-amount",
        {"type": "missing_amount", "from_stage": "Proposal/Price Quote"},
        {"O2": "No amount in stage Proposal/Price Quote"},
    ),
    ("missing-amount-later-stage", {"type": "missing_amount", "from_stage": "Negotiation/Review"}, {}),
    (
        "single-threaded",
        {"type": "single_threaded", "min_contacts": 2},
        {"O2": "Single-threaded: 1 contact (at least 2 expected)"},
    ),
    (
        "probability-mismatch",
        {"type": "probability_mismatch", "expected": {"Qualification": 10, "Proposal/Price Quote": 75}},
        {"O2": "Probability 50% does not match stage Proposal/Price Quote (75% expected)"},
    ),
    (
        "probability-within-tolerance",
        {"type": "probability_mismatch", "expected": {"Proposal/Price Quote": 75}, "tolerance": 25},
        {},
    ),
    (
        "custom",
        {
            "type": "custom",
            "name": "big-early-deal",
            "message": "Large deal still in qualification",
            "where": [
                {"field": "amount", "op": "gte", "value": 500},
                {"field": "stage", "op": "eq", "value": "Qualification"},
            ],
        },
        {"O1": "Large deal still in qualification"},
    ),
    (
        "custom-related",
        {
            "type": "custom",
            "name": "no-ceo",
            "message": "A CEO is involved",
            "where": [{"field": "contact.title", "op": "eq", "value": "CEO"}],
        },
        {"O1": "A CEO is involved"},
    ),
]


@pytest.mark.parametrize(("rule", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_hygiene_rule(engine: Engine, rule: dict[str, Any], expected: dict[str, str]) -> None:
    world.build(engine)
    text = world.mapping_text([COUNT_KR], hygiene={"stages": STAGES, "rules": [rule]})
    mapping, _ = world.apply_and_compute(engine, text)
    with Session(engine) as session:
        config = okrs.current_config(session, mapping)
        lines = report.hygiene_by_opportunity(session, mapping, config)
        assert {line.opportunity_id: line.problems for line in lines} == {o: [s] for o, s in expected.items()}
        total = session.get(HygieneSummary, (mapping.id, "*"))
        assert total is not None
        assert (total.open_opportunities, total.violations) == (2, len(expected))
        assert total.score == pytest.approx((2 - len(expected)) / 2)


def test_hygiene_score_metric_over_all_or_named_rules(engine: Engine) -> None:
    world.build(engine)
    krs = [
        {"key": "all", "title": "All rules", "metric": {"type": "hygiene_score"}, "target": 0.9},
        {
            "key": "named",
            "title": "Next step",
            "metric": {"type": "hygiene_score", "rules": ["no_next_step"]},
            "target": 0.9,
        },
    ]
    rules = [{"type": "no_next_step"}, {"type": "close_date_past"}]
    mapping, _ = world.apply_and_compute(engine, world.mapping_text(krs, hygiene={"stages": STAGES, "rules": rules}))
    with Session(engine) as session:
        all_rules = session.get(KeyResultValue, (mapping.id, "all"))
        named = session.get(KeyResultValue, (mapping.id, "named"))
        assert all_rules is not None and named is not None
        assert all_rules.value == 0.0  # O1 has a past close date, O2 no next step
        assert named.value == 0.5  # only O2 fails "no next step"
        assert (named.numerator, named.denominator) == (1, 2)


KAM = {
    "accounts": {"where": [{"field": "custom.key_account", "op": "is_true"}]},
    "criteria": [
        {"key": "contacts", "title": "Two contacts met", "type": "distinct_contacts", "min": 2, "days": 90},
        {
            "key": "executive",
            "title": "Executive meeting",
            "type": "activity",
            "where": [
                {"field": "activity_kind", "op": "eq", "value": "meeting"},
                {"field": "contact.title", "op": "in", "value": ["CEO", "CFO"]},
            ],
        },
        {"key": "plan", "title": "QBR deck", "type": "task_completed", "subject": "qbr deck"},
        {"key": "board", "title": "Board-level relationship", "type": "assessed"},
    ],
}
KAM_KR = {
    "key": "kam",
    "title": "Key accounts healthy",
    "metric": {"type": "kam_criteria", "min_score": 1.0},
    "target": 1,
}


def test_kam_criteria_derived_and_assessed(engine: Engine) -> None:
    world.build(engine)
    text = world.mapping_text([KAM_KR], kam=KAM)
    mapping, _ = world.apply_and_compute(engine, text)
    with Session(engine) as session:
        criteria = {
            c.criterion_key: c
            for c in session.exec(select(KamCriterionResult).where(KamCriterionResult.mapping_id == mapping.id))
        }
        # A1 is the only key account: C1 and C2 were met, M1 was with its CEO, T1 prepared the QBR deck
        assert {k: (c.account_id, c.status, c.measured) for k, c in criteria.items()} == {
            "contacts": ("A1", "met", 2),
            "executive": ("A1", "met", 1),
            "plan": ("A1", "met", 1),
            "board": ("A1", "not_assessed", None),
        }
        # "board" is not assessed yet: left out of the score, which covers 3 of the 4 criteria, all met: 3 / 3 = 1.0
        # (it read 3 / 4 = 0.75 while an unassessed criterion counted as not met)
        score = session.get(KamAccountScore, (mapping.id, "A1"))
        assert score is not None and score.owner_id == "u1"
        assert (score.score, score.covered, score.criteria) == (1.0, 3, 4)
        value = session.get(KeyResultValue, (mapping.id, "kam"))
        assert value is not None and value.value == 1.0  # the only key account meets what it is measured on

        okrs.assess(
            session,
            mapping,
            account_id="A1",
            criterion_key="board",
            status="partly",
            author="katrin",
            comment="CFO joined the QBR",
            evidence_url=None,
            at=datetime(2026, 8, 10, tzinfo=UTC),
        )
        session.commit()
    mapping, _ = world.apply_and_compute(engine, text)
    with Session(engine) as session:
        score = session.get(KamAccountScore, (mapping.id, "A1"))  # (3 met + ½ partly) / 4 covered
        assert score is not None and score.score == pytest.approx(0.875) and (score.covered, score.criteria) == (4, 4)
        board = session.get(KamCriterionResult, (mapping.id, "A1", "board"))
        assert board is not None and (board.status, board.assessed_by, board.comment) == (
            "partly",
            "katrin",
            "CFO joined the QBR",
        )
        okrs.assess(
            session,
            mapping,
            account_id="A1",
            criterion_key="board",
            status="met",
            author="katrin",
            comment=None,
            evidence_url="https://crm.example.com/notes/1",
            at=datetime(2026, 8, 11, tzinfo=UTC),
        )
        session.commit()
    mapping, _ = world.apply_and_compute(engine, text)
    with Session(engine) as session:
        value = session.get(KeyResultValue, (mapping.id, "kam"))
        assert value is not None and value.value == 1.0


@pytest.mark.parametrize(
    ("criterion", "status", "message"),
    [
        ("contacts", "met", "derived from activities"),
        ("board", "great", "status must be one of met, partly, not_met"),
        ("nope", "met", "no KAM criterion 'nope'"),
    ],
    ids=["derived-criterion", "bad-status", "unknown-criterion"],
)
def test_assessment_refused(engine: Engine, criterion: str, status: str, message: str) -> None:
    world.build(engine)
    mapping, _ = world.apply_and_compute(engine, world.mapping_text([KAM_KR], kam=KAM))
    with (
        Session(engine) as session,
        pytest.raises((okrs.CycleRuleError, okrs.NotFoundError, ValueError), match=message),
    ):
        okrs.assess(
            session,
            mapping,
            account_id="A1",
            criterion_key=criterion,
            status=status,
            author="x",
            comment=None,
            evidence_url=None,
            at=world.AS_OF,
        )


def test_compute_enlarges_sqlite_page_cache_only_while_it_runs(engine: Engine) -> None:
    """A computation raises SQLite's page cache (evidence inserts into large indexes), the temporary tables' too
    (the rows a full compute compares with the stored ones), and gives the pooled connection its own sizes back, so
    an idle pool does not hold 48 MB per connection."""
    world.build(engine)
    mapping, _ = world.apply_and_compute(engine, world.mapping_text([COUNT_KR]))
    seen: list[int] = []
    seen_temp: list[int] = []  # the computation above stored evidence: this one compares with it

    def during(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if engine.dialect.name == "sqlite" and statement.startswith("INSERT INTO key_result_evidence"):
            seen.append(conn.exec_driver_sql("PRAGMA cache_size").scalar())
        if engine.dialect.name == "sqlite" and statement.startswith("INSERT INTO okrsync_fresh_evidence"):
            seen_temp.append(conn.exec_driver_sql("PRAGMA temp.cache_size").scalar())

    event.listen(engine, "after_cursor_execute", during)
    try:
        with Session(engine) as session:
            sizes = ("PRAGMA cache_size", "PRAGMA temp.cache_size")
            sqlite = engine.dialect.name == "sqlite"
            before = [session.execute(text(pragma)).scalar() for pragma in sizes] if sqlite else None
            compute(session, mapping=mapping, as_of=world.AS_OF)
            if sqlite:
                assert [session.execute(text(pragma)).scalar() for pragma in sizes] == before
            session.commit()
    finally:
        event.remove(engine, "after_cursor_execute", during)
    if engine.dialect.name == "sqlite":
        assert seen and set(seen) == {-COMPUTE_CACHE_KIB}
        assert seen_temp and set(seen_temp) == {-COMPUTE_TEMP_CACHE_KIB}
