"""The CRM seam (``connectors.adapter``, ``connectors.registry``): ``service/`` and ``mappings/`` name no CRM.

A string literal equal to a registered CRM's name (``"salesforce"``, ``"hubspot"``) in ``service/`` or ``mappings/``
is a branch on a CRM, a hard-wired key or a hard-wired settings section: each belongs in the CRM's adapter. Prose
that mentions a CRM (an error message, a docstring) is not a name and is allowed. ``ALLOWED`` would list, per file,
a literal that has not moved yet and why; it is empty and may only stay so or shrink.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.records import Account, Activity, ActivityKind, Owner
from connectors.registry import ADAPTERS, BUILT_IN, adapter, register
from connectors.writes import Target
from service.app import create_app
from service.crm.clients import CrmAccess
from service.dashboard import links
from service.kit.settings import Settings
from service.loop import PassReport, find_connection, run_pass
from service.okrs import service as okrs
from tests.service.memory_crm import MemoryAdapter, MemoryConfig, MemoryWorld

ROOT = Path(__file__).resolve().parents[2]

# file → how many CRM-name literals it may still hold, and why they are not in an adapter yet
ALLOWED: dict[str, tuple[int, str]] = {}


def crm_literals(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every string constant that equals a CRM's name."""
    names = set(BUILT_IN)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in names
    )


def test_service_and_mappings_name_no_crm_outside_the_registry() -> None:
    found: dict[str, list[tuple[int, str]]] = {}
    for folder in ("service", "mappings"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            literals = crm_literals(path)
            if literals:
                found[str(path.relative_to(ROOT))] = literals
    over = {name: literals for name, literals in found.items() if len(literals) > ALLOWED.get(name, (0, ""))[0]}
    assert not over, "CRM names outside connectors/ (move the decision into the CRM's adapter):\n" + "\n".join(
        f"  {name}: " + ", ".join(f"line {line} {value!r}" for line, value in literals)
        for name, literals in over.items()
    )
    stale = {name: ALLOWED[name][0] for name in ALLOWED if len(found.get(name, [])) < ALLOWED[name][0]}
    assert not stale, f"fewer CRM names than allowed, lower ALLOWED: {stale}"


def test_the_check_finds_a_branch_on_a_crm(tmp_path: Path) -> None:
    module = tmp_path / "branch.py"
    module.write_text('def pages(crm):\n    return "x" if crm == "hubspot" else "y"\n', encoding="utf-8")
    assert crm_literals(module) == [(2, "hubspot")]


def test_every_built_in_crm_has_an_adapter_with_what_the_service_asks() -> None:
    for name in BUILT_IN:
        found = adapter(name)
        assert found.name == name and ADAPTERS[name] is found
        assert found.title and found.pulls and found.required_setting and found.routing_setting
        assert found.receivers and found.sandbox_examples  # its webhook routes, the examples its sandbox fits
        assert isinstance(found.raw_prefix, tuple)


# -- the whole loop through a test-only adapter ------------------------------------------------------------------
MAPPING = """\
version: 1
team:
  name: Memory team
  members:
    - {email: ada@memory.test, name: Ada}
cycle:
  name: Q4 2026
  start: 2026-10-01
  end: 2026-12-31
objectives:
  - key: tier-a
    title: Our best accounts meet us
    key_results:
      - key: tier-a-meetings
        title: 4 meetings with tier-A accounts
        metric:
          type: count
          of: activities
          where:
            - {field: activity_kind, op: eq, value: meeting}
            - {field: account.raw.tier, op: eq, value: A}
        target: 4
"""
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def memory_crm() -> Iterator[MemoryAdapter]:
    added = MemoryAdapter()
    register(added)
    try:
        yield added
    finally:
        ADAPTERS.pop(added.name, None)


def _meeting(record_id: str, account: str, at: datetime) -> Activity:
    return Activity(
        external_id=record_id,
        modified_at=at,
        activity_kind=ActivityKind.meeting,
        subject=record_id,
        occurred_at=at,
        owner_id="u1",
        account_id=account,
        raw={"fields": {"subject": record_id}},
    )


def _key_result(world: MemoryWorld) -> dict[str, Any]:
    (values,) = world.written[Target.key_result.value].values()
    return values


def test_the_whole_loop_runs_through_a_test_only_adapter(engine: Engine, memory_crm: MemoryAdapter) -> None:
    world = MemoryWorld()
    world.put("owners", Owner(external_id="u1", modified_at=T0, name="Ada", email="ada@memory.test"))
    for account, tier in (("a1", "A"), ("a2", "B")):
        world.put(
            "accounts", Account(external_id=account, modified_at=T0, name=account, raw={"fields": {"tier": tier}})
        )
    for n, account in enumerate(("a1", "a1", "a2")):
        world.put("activities", _meeting(f"m{n}", account, T0 + timedelta(hours=n)))
    access = CrmAccess(memory_crm.name, "default", MemoryConfig(world=world))
    settings = Settings()  # type: ignore[call-arg]

    def one_pass(**kwargs: Any) -> PassReport:
        return run_pass(engine, connector=access.connector(), writer=access.writer(), connection_name="default",
                        settings=settings, **kwargs)  # fmt: skip

    one_pass(full=True)  # sync creates the connection; the mapping is applied against what was synced
    with Session(engine) as session:
        connection = find_connection(session, crm="memory", name="default")
        assert connection is not None
        okrs.apply(session, okrs.load(MAPPING, filename="memory.yaml"), connection=connection, author="test",
                   now=T0 + timedelta(days=1))  # fmt: skip
        session.commit()
    first = one_pass(full=True)
    assert first.writeback is not None and first.writeback.api_calls > 0
    # two meetings with the tier-A account: raw.tier read through the adapter's raw_prefix ("fields")
    assert _key_result(world)["value"] == 2

    world.put("activities", _meeting("m3", "a1", T0 + timedelta(days=2)))  # a rep logs a meeting: a webhook names it
    refreshed = one_pass(targets={"activities": {"m3"}})
    assert refreshed.sync.counts["activities"].fetched == 1
    assert _key_result(world)["value"] == 3

    world.delete("activities", "m0", T0 + timedelta(days=3))  # deleted in the CRM: the next incremental run sees it
    one_pass()
    assert _key_result(world)["value"] == 2

    # a webhook through the adapter's own receiver (POST /webhooks/memory, a route service/ made from the adapter);
    # the worker reads what the stored event names and writes the new value back
    world.put("activities", _meeting("m4", "a1", T0 + timedelta(days=4)))
    app = create_app(settings=settings, engine=engine, crms={memory_crm.name: access}, worker=False)
    with TestClient(app) as client:
        answer = client.post("/webhooks/memory", json={"changed": [{"stream": "activities", "id": "m4"}]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
        refused = client.post("/webhooks/memory", content=b"[]")
        assert refused.status_code == 400 and "not a memory change list" in refused.text
        app.state.worker.last_sync[memory_crm.name] = time.monotonic()  # just synced: no periodic sync now
        report = app.state.worker.run_once(wait_for_burst=False)
    assert report.events == 1 and report.refreshes["memory"].sync.counts["activities"].fetched == 1
    assert _key_result(world)["value"] == 3

    # the dashboard's record links come from the adapter too
    assert links.record_url(crm="memory", instance_url="https://memory.test/records", crm_object="activities",
                            record_id="m3") == "https://memory.test/records/activities/m3"  # fmt: skip
