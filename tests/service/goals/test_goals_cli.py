"""The command line checks an objective's ``serves`` too: `mappings validate` (with or without synced CRM data) and
`mappings apply` refuse a goal that does not exist with the file's line and column, and apply nothing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session
from typer.testing import CliRunner, Result

from service.cli import app
from service.goals import service as goals
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.kit.settings import get_settings
from tests.service.compute import world

CALLS = {"field": "activity_kind", "op": "eq", "value": "call"}
KR = {
    "key": "meetings",
    "title": "20 calls",
    "target": 20,
    "metric": {"type": "count", "of": "activities", "where": [CALLS]},
}


@pytest.fixture
def okrsync(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Result]]:
    for name in [n for n in os.environ if n.startswith("OKRSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OKRSYNC_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


def _file(tmp_path: Path) -> Path:
    data = yaml.safe_load(world.mapping_text([KR]))
    data["objectives"][0]["serves"] = "new-business-2026"
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_validate_and_apply_refuse_an_unknown_goal_with_the_line(
    okrsync: Callable[..., Result], tmp_path: Path
) -> None:
    path = _file(tmp_path)
    line = path.read_text().splitlines().index("  serves: new-business-2026") + 1
    says = f"{path}:{line}:"
    before_sync = okrsync("mappings", "validate", str(path))  # no CRM data yet: the goal is checked all the same
    assert before_sync.exit_code == 1 and says in before_sync.stderr, before_sync.output
    assert "objectives[0].serves: objective objective ('An objective') serves company goal 'new-business-2026'" in (
        before_sync.stderr.replace("\n", "")
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'okrsync.db'}")
    create_schema(engine)
    world.build(engine)
    applied = okrsync("mappings", "apply", str(path), "--as-of", "2026-08-15T12:00:00")
    assert applied.exit_code == 1 and says in applied.stderr and "nothing was applied" in applied.stderr
    assert "no mapping applied yet" in okrsync("report").stderr
    with Session(engine) as session:
        fields = goals.GoalFields(title="Win new customers", owner="ceo", measure="120 new customers", period="2026")
        goals.create(session, key="new-business-2026", fields=fields, by="test", at=datetime.now(UTC))
        session.commit()
    engine.dispose()
    assert okrsync("mappings", "validate", str(path)).exit_code == 0
    applied = okrsync("mappings", "apply", str(path), "--as-of", "2026-08-15T12:00:00")
    assert applied.exit_code == 0, applied.output
