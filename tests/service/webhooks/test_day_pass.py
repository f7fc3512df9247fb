"""The worker's pass at the start of a UTC day: a new day moves every key result's window and every hygiene age, so
the first pass of the day computes in full. The worker runs that pass at its first poll of the day, not in the first
webhook's refresh (real sandbox Salesforce over HTTPS on loopback, real database)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.sandbox.server import SandboxServer
from service.crm.clients import CrmAccess
from service.kit.db import utcnow
from service.kit.metrics import Metrics
from service.kit.settings import ServeSettings, Settings
from service.okrs import service as okrs
from service.webhooks.tasks import Worker
from tests.conftest import ANCHOR, fast_config
from tests.mappings.test_examples_ground_truth import EXAMPLES


class Clock:
    """The worker's UTC time: real time moved by ``offset``."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


def test_the_first_poll_of_a_day_runs_the_days_pass(engine: Engine, sandbox: SandboxServer) -> None:
    settings = Settings(serve=ServeSettings(sync_interval_seconds=3600))  # type: ignore[call-arg]
    clock = Clock()
    worker = Worker(
        engine,
        settings,
        {"salesforce": CrmAccess("salesforce", "sandbox", fast_config(sandbox))},
        Metrics(),
        clock=clock,
    )
    first = worker.run_once(wait_for_burst=False)
    assert "salesforce" in first.refreshes  # never synced: due at once
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/sandbox")
        okrs.apply(
            session, okrs.load_path(EXAMPLES / "acquisition.yaml"), connection=connection, author="t", now=ANCHOR
        )
        session.commit()

    later_today = worker.run_once(wait_for_burst=False)
    assert later_today.refreshes == {}, "within the interval, on the same day: nothing is due"

    now = clock()
    clock.offset = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), now.tzinfo) - now
    clock.offset += timedelta(seconds=5)  # five seconds into tomorrow (UTC)
    tomorrow = worker.run_once(wait_for_burst=False)
    assert "salesforce" in tomorrow.refreshes, "the first poll of a new day runs the periodic pass"
    assert len(tomorrow.refreshes["salesforce"].computed) == 1  # the mapping, computed in that pass

    again = worker.run_once(wait_for_burst=False)
    assert again.refreshes == {}, "once per day: the next poll of that day waits for the interval again"
