"""Key-result history over simulated weeks gives the right trend and expected-by-now; a frozen check-in does not
change when the data changes later; check-ins for an ended cycle, unknown key results and bad confidence are
refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce.connector import SalesforceConnector
from service.app import create_app
from service.checkins import service as checkins
from service.compute.models import HygieneHistory, KeyResultHistory, KeyResultValue
from service.compute.service import compute
from service.kit.auth import Role, create_token
from service.kit.server import ThreadedServer
from service.kit.settings import Settings
from service.okrs import service as okrs
from service.sync.service import run_sync
from tests import loopback
from tests.conftest import ANCHOR, fast_config
from tests.service.writeback.world import (
    SalesforceWorld,
    apply_examples,
    deployed_org,
    log_counted_meeting,
    start_salesforce,
)

pytestmark = pytest.mark.slow  # every test syncs a sandbox org, computes the examples and serves the API

WEEK1 = ANCHOR - timedelta(days=42)  # 2026-08-19: mid-cycle
WEEKS = [WEEK1, WEEK1 + timedelta(days=7), WEEK1 + timedelta(days=14)]


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[SalesforceWorld]:
    with ExitStack() as stack:
        world = start_salesforce(stack, engine, tmp_path, deployed_org(), fast_config)
        apply_examples(engine, "salesforce", ("acquisition",), as_of=WEEKS[0])
        with Session(engine) as session:
            mapping = okrs.find_mapping(session, None)
            for week in WEEKS[1:]:
                compute(session, mapping=mapping, as_of=week)
            session.commit()
        yield world


def _mapping(session: Session):  # type: ignore[no-untyped-def]
    return okrs.find_mapping(session, None)


def test_trend_and_expected_by_now_over_simulated_weeks(world: SalesforceWorld) -> None:
    with Session(world.engine) as session:
        mapping = _mapping(session)
        history = session.exec(
            sqlmodel.select(KeyResultHistory)
            .where(KeyResultHistory.kr_key == "discovery-meetings")
            .order_by(KeyResultHistory.as_of)  # type: ignore[arg-type]
        ).all()
        assert [h.as_of for h in history] == WEEKS
        values = [h.value or 0 for h in history]
        assert values[0] < values[1] < values[2]  # meetings keep being logged
        found = checkins.trend(session, mapping, "discovery-meetings")
        assert found.value == values[2] and found.change_7d == values[2] - values[1] and found.points == 3
        kr = okrs.current_config(session, mapping).key_result("discovery-meetings")
        elapsed = (WEEKS[2] - ANCHOR.replace(month=7, day=1, hour=0)).total_seconds() / (92 * 86400)
        assert found.expected_value == pytest.approx(kr.baseline + (kr.target - kr.baseline) * elapsed, rel=1e-3)
        earlier = checkins.trend(session, mapping, "discovery-meetings", as_of=WEEKS[1])
        assert earlier.value == values[1] and earlier.change_7d == values[1] - values[0]


def test_a_frozen_check_in_does_not_change_when_the_data_does(world: SalesforceWorld) -> None:
    with Session(world.engine) as session:
        mapping = _mapping(session)
        frozen = checkins.freeze(
            session, mapping, author="team lead", attendees=["Anna Berger", "David Garcia", "Anna Berger"],
            confidence={"discovery-meetings": 7, "new-pipeline": "at_risk"},
            notes={"discovery-meetings": "<script>alert(1)</script> trade fair next week"},
            note="Good week", at=WEEKS[2],
        )  # fmt: skip
        session.commit()
        before = dict(frozen.key_results)
        assert frozen.attendees == ["Anna Berger", "David Garcia"]
        assert before["discovery-meetings"]["confidence"] == 7 and before["new-pipeline"]["confidence"] == "at_risk"
    for _ in range(3):
        log_counted_meeting(world.engine, world.org)
    run_sync(world.engine, SalesforceConnector(fast_config(world.server)), connection_name="sandbox")
    with Session(world.engine) as session:
        mapping = _mapping(session)
        compute(session, mapping=mapping, as_of=WEEKS[2] + timedelta(hours=1))
        session.commit()
        now = session.get(KeyResultValue, (mapping.id, "discovery-meetings"))
        [stored] = checkins.check_ins(session, mapping)
    assert now is not None and now.value == before["discovery-meetings"]["value"] + 3
    assert stored.key_results == before  # the check-in still shows what the team saw
    assert stored.key_results["discovery-meetings"]["note"].startswith("<script>")  # stored as text; escaped on output


@pytest.mark.parametrize(
    ("confidence", "notes", "at", "message"),
    [
        ({"discovery-meetings": 11}, {}, WEEKS[2], "use 1–10"),
        ({"discovery-meetings": "fine"}, {}, WEEKS[2], "use 1–10"),
        ({"no-such-kr": 5}, {}, WEEKS[2], "no key result 'no-such-kr'"),
        ({}, {"no-such-kr": "x"}, WEEKS[2], "no key result 'no-such-kr'"),
        ({}, {}, ANCHOR + timedelta(days=5), "ended on 2026-09-30"),
    ],
    ids=["confidence-too-high", "confidence-word", "unknown-kr", "unknown-kr-note", "cycle-ended"],
)
def test_bad_check_ins_are_refused(world: SalesforceWorld, confidence: dict, notes: dict, at, message: str) -> None:  # type: ignore[no-untyped-def, type-arg]
    with Session(world.engine) as session:
        with pytest.raises(checkins.CheckInError, match=message):
            checkins.freeze(session, _mapping(session), author="x", attendees=[], confidence=confidence, notes=notes,
                            note=None, at=at)  # fmt: skip
        assert checkins.check_ins(session, _mapping(session)) == []


def test_check_in_api_roles_and_closed_cycle(world: SalesforceWorld) -> None:
    with Session(world.engine) as session:
        tokens = {r: create_token(session, name=r.value, role=r)[1] for r in (Role.viewer, Role.sales_ops)}
        mapping_id = _mapping(session).id
        session.commit()
    app = create_app(settings=Settings(_env_file=None), engine=world.engine)  # type: ignore[call-arg]
    with ThreadedServer(app) as http:
        url = f"{http.base_url}/api/v1/mappings/{mapping_id}"
        body = {"attendees": ["Anna"], "confidence": {"discovery-meetings": 8}}
        viewer = {"Authorization": f"Bearer {tokens[Role.viewer]}"}
        ops = {"Authorization": f"Bearer {tokens[Role.sales_ops]}"}
        assert loopback.post(f"{url}/weekly-check-ins", json=body, headers=viewer).status_code == 403
        ended = loopback.post(f"{url}/weekly-check-ins", json=body, headers=ops)  # today is after Q3 2026
        assert ended.status_code == 409 and "ended" in ended.json()["detail"]
        bad = loopback.post(f"{url}/weekly-check-ins", json={"confidence": {"discovery-meetings": 0}}, headers=ops)
        assert bad.status_code == 422
        assert loopback.get(f"{url}/weekly-check-ins", headers=viewer).json() == []
        trend = loopback.get(f"{url}/key-results/discovery-meetings/trend", headers=viewer).json()
        assert trend["points"] == 3 and trend["change_7d"] is not None
        assert loopback.get(f"{url}/key-results/nope/trend", headers=viewer).status_code == 404


def test_the_team_hygiene_score_is_kept_per_computation(world: SalesforceWorld) -> None:
    apply_examples(world.engine, "salesforce", ("pipeline-hygiene",), as_of=WEEKS[0])
    with Session(world.engine) as session:
        mapping = okrs.find_mapping(session, "Vertrieb DACH / Q3 2026 hygiene")
        compute(session, mapping=mapping, as_of=WEEKS[1])
        session.commit()
        rows = session.exec(
            sqlmodel.select(HygieneHistory)
            .where(HygieneHistory.mapping_id == mapping.id)
            .order_by(HygieneHistory.as_of)  # type: ignore[arg-type]
        ).all()
    assert [r.as_of for r in rows] == WEEKS[:2]
    assert all(r.open_opportunities > 0 and r.score is not None and 0 <= r.score <= 1 for r in rows)


def test_status_changes_between_the_last_two_computations(world: SalesforceWorld) -> None:
    from service.notifications.service import latest_status_changes

    with Session(world.engine) as session:
        mapping = _mapping(session)
        before = {v.kr_key: v.status for v in session.exec(sqlmodel.select(KeyResultValue))}
        compute(session, mapping=mapping, as_of=ANCHOR)  # the quarter's last day: statuses settle
        session.commit()
        after = {v.kr_key: v.status for v in session.exec(sqlmodel.select(KeyResultValue))}
        expected = [(k, before[k], after[k]) for k in sorted(after) if before.get(k) != after[k]]
        assert latest_status_changes(session, mapping_id=mapping.id or 0) == expected
