"""After a webhook's targeted pass the staging reads only the CRM records the incremental computation touched, and
stages exactly what a whole staging would have.

The sandbox org is synced for real and the examples are computed, staged and written back; then a record is changed
in the CRM (the changes of tests/service/compute/test_incremental.py), the records that changed are refreshed by id as
a webhook would name them (``run_pass(targets=…)``), and right after that pass a whole staging of the same database
must find nothing left to stage or delete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.writer import SalesforceWriter
from connectors.sandbox.store import SandboxOrg
from service.kit.settings import Settings
from service.loop import PassReport, find_connection, run_pass
from service.okrs import service as okrs
from service.writeback.service import stage_connection
from tests.conftest import ANCHOR
from tests.service.compute.test_incremental import (
    CHANGES,
    MAPPINGS,
    change_meeting,
    inquiry_moves_to_a_customer,
    move_call,
    prospect_becomes_customer,
)

pytestmark = pytest.mark.slow  # 13 cases, each syncs, computes and writes back a sandbox org twice

# the objects a webhook can name (Salesforce streams; the relation and e-mail streams re-read activities)
STREAMS = ("Account", "Contact", "Opportunity", "OpportunityContactRole", "Task", "Event", "Lead")
# changes that move an activity between records: the record it left must be compared too
MOVES = {change_meeting, move_call, inquiry_moves_to_a_customer}
# an account's type decides which inquiries count: the response times are recomputed whole, and so is the staging
WHOLE = {prospect_becomes_customer}


def _state(org: SandboxOrg) -> dict[str, dict[str, dict[str, Any]]]:
    return {s: {r["Id"]: dict(r) for r in org.records(s, include_deleted=True)} for s in STREAMS}


def _targets(before: dict[str, dict[str, dict[str, Any]]], after: dict[str, dict[str, dict[str, Any]]]) -> Any:
    """What a webhook would name: per stream, the records created, changed or deleted."""
    targets: dict[str, set[str]] = {}
    for stream in STREAMS:
        old, new = before[stream], after[stream]
        changed = {i for i in old.keys() | new.keys() if old.get(i) != new.get(i)}
        if changed:
            targets[stream] = changed
    return targets


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_narrowed_staging_stages_what_a_whole_staging_would(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, change: Callable[[SandboxOrg], None]
) -> None:
    settings = Settings()  # type: ignore[call-arg]

    def one_pass(**kwargs: Any) -> PassReport:
        return run_pass(
            engine, connector=SalesforceConnector(config), writer=SalesforceWriter(config), connection_name="sandbox",
            settings=settings, **kwargs,
        )  # fmt: skip

    one_pass(full=True)
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/sandbox")
        for path in MAPPINGS:
            okrs.apply(session, okrs.load_path(path), connection=connection, author="test", now=ANCHOR)
        session.commit()
    first = one_pass(full=True)
    assert first.staged is not None and first.staged.narrowed_to is None and first.staged.staged["contribution"] > 0

    before = _state(org)
    change(org)
    targets = _targets(before, _state(org))
    assert targets, "the change altered a record a webhook would name"
    refreshed = one_pass(targets=targets)
    staged = refreshed.staged
    assert staged is not None
    assert [report.kind for _name, report in refreshed.computed] == ["incremental"] * len(MAPPINGS)
    if change in WHOLE:
        assert staged.narrowed_to is None, staged
    else:
        assert staged.narrowed_to is not None, f"{change.__name__}: the staging was not narrowed"
    if change in MOVES:  # the activity's old and new record are both compared
        assert staged.narrowed_to is not None and staged.narrowed_to >= 2, staged

    with Session(engine) as session:
        stored = find_connection(session, crm="salesforce", name="sandbox")
        assert stored is not None
        whole = stage_connection(session, connection=stored, settings=settings)
        left = dict(whole.staged), dict(whole.deletes)
        session.rollback()
    assert whole.total() == 0, f"{change.__name__}: a whole staging still finds (staged, deleted) {left}"
