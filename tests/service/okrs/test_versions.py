"""The cycle rules: key results may change mid-cycle (versioned, with who/when/why, values recomputed); objectives
may not; mapping files must fit what was synced from the CRM."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mappings.source import MappingFileError
from service.compute.models import KeyResultValue
from service.okrs import service as okrs
from service.okrs.models import OkrMapping, OkrMappingVersion
from tests.service.compute import world

MEETINGS = {"type": "count", "of": "activities", "where": [{"field": "activity_kind", "op": "eq", "value": "meeting"}]}


def krs(target: float = 8, title: str = "Meetings") -> list[dict[str, Any]]:
    return [{"key": "meetings", "title": title, "metric": MEETINGS, "target": target}]


def text(objective_title: str = "An objective", **kw: Any) -> str:
    return world.mapping_text(krs(**kw)).replace("An objective", objective_title)


def _apply(engine: Engine, source: str, *, reason: str | None = None, now: datetime = world.AS_OF) -> Any:
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, None)
        mapping, version = okrs.apply(
            session,
            okrs.load(source, filename="okrs.yaml"),
            connection=connection,
            author="sales-ops",
            reason=reason,
            now=now,
        )
        session.commit()
        return version.version if version else None


def _versions(engine: Engine) -> list[OkrMappingVersion]:
    with Session(engine) as session:
        return list(session.exec(select(OkrMappingVersion).order_by(OkrMappingVersion.version)).all())


def test_key_result_edit_mid_cycle_is_versioned_and_recomputed(engine: Engine) -> None:
    world.build(engine)
    mapping, _ = world.apply_and_compute(engine, text(target=8))
    assert _apply(engine, text(target=8)) is None  # unchanged: no new version

    with pytest.raises(okrs.CycleRuleError, match="say why the definition changes"):
        _apply(engine, text(target=4))
    assert len(_versions(engine)) == 1

    mapping, _ = world.apply_and_compute(engine, text(target=4), reason="Team of two after Olaf left")
    versions = _versions(engine)
    assert [(v.version, v.author, v.reason, v.changes) for v in versions] == [
        (1, "test", None, ["first version"]),
        (2, "test", "Team of two after Olaf left", ["key result meetings changed"]),
    ]
    assert versions[1].applied_at == world.AS_OF
    with Session(engine) as session:
        value = session.get(KeyResultValue, (mapping.id, "meetings"))
        assert value is not None
        assert (value.value, value.progress, value.version) == (4, 1.0, 2)  # 4 of 4 now, not 4 of 8


def test_objective_edit_mid_cycle_is_refused_and_nothing_is_stored(engine: Engine) -> None:
    world.build(engine)
    world.apply_and_compute(engine, text())
    with pytest.raises(okrs.CycleRuleError, match="objectives cannot change.*start a new cycle"):
        _apply(engine, text("Another objective"), reason="we changed our mind")
    with pytest.raises(okrs.CycleRuleError, match="dates cannot change"):
        _apply(engine, text().replace("2026-09-30", "2026-09-15"), reason="shorter")
    assert len(_versions(engine)) == 1
    with Session(engine) as session:
        config = okrs.current_config(session, session.exec(select(OkrMapping)).one())
        assert config.objectives[0].title == "An objective"


def test_before_the_cycle_starts_everything_may_change(engine: Engine) -> None:
    world.build(engine)
    june = datetime(2026, 6, 20, tzinfo=UTC)
    assert _apply(engine, text(), now=june) == 1
    assert _apply(engine, text("A better objective"), now=june) == 2
    assert _apply(engine, text("A better objective"), now=june) is None


def test_a_new_cycle_name_starts_a_new_mapping(engine: Engine) -> None:
    world.build(engine)
    world.apply_and_compute(engine, text())
    _apply(engine, text("Another objective").replace("name: Q3 2026", "name: Q3 2026 (reset)"))
    with Session(engine) as session:
        assert [m.cycle for m in okrs.mappings(session)] == ["Q3 2026", "Q3 2026 (reset)"]


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (("anna@example.com", "anne@example.com"), 5, "no CRM user with e-mail anne@example.com in salesforce/world"),
        (
            ("salesforce: Key_Account__c", "salesforce: KeyAccount__c"),
            15,
            "no synced account carries salesforce field 'KeyAccount__c'",
        ),
    ],
    ids=["unknown-member", "custom-field-not-synced"],
)
def test_the_file_must_fit_the_synced_crm(engine: Engine, edit: tuple[str, str], line: int, message: str) -> None:
    world.build(engine)
    source = text().replace(*edit)
    with pytest.raises(MappingFileError) as caught:
        _apply(engine, source)
    [problem] = caught.value.problems
    assert (problem.line, problem.file) == (line, "okrs.yaml")
    assert message in problem.message
    with Session(engine) as session:
        assert session.exec(select(OkrMapping)).all() == []
