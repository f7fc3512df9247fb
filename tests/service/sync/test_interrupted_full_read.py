"""A full read of Salesforce interrupted after any page of any stream, then resumed by an ordinary run, ends with
the local copy equal to the org: nothing the resumed read skipped is swept as deleted.

Found by the kill -9 test (tests/service/test_faults.py, seed 338839): the EmailMessage stream of a full read set
its cursor to the read's start before it read the e-mails without a task; a worker killed between the two resumed
from that cursor (an incremental read from then: none of the older e-mails) and the end-of-stream sweep marked every
e-mail on a case deleted, so "answered within 4 hours" counted 180 inquiries instead of 188.

The interruption is an exception raised between two pages, where a kill -9 or a stopped run leaves the sync: what
each page brought is committed with its cursor, nothing after it is. The connector is the real one over real HTTPS
to the sandbox org; only the stop is the test's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce import mapping
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.crm.models import Activity
from service.sync.models import SyncRun
from service.sync.service import run_sync
from tests.conftest import ANCHOR, fast_config
from tests.service.sync.helpers import assert_local_equals_org

SIZES = {"seed": 13, "accounts": 20, "opportunities": 40, "activities": 1200}


class Interrupted(Exception):
    """The stop between two pages."""


class StopsAfter:
    """The real connector, stopped once after ``pages`` pages of ``stream`` have been handed to the sync."""

    def __init__(self, inner: SalesforceConnector, stream: str, pages: int) -> None:
        self.inner, self.stream, self.pages_before_stop = inner, stream, pages

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pages(self, stream: str, *, since: datetime | None) -> Iterator[Any]:
        for handed, page in enumerate(self.inner.pages(stream, since=since)):
            if stream == self.stream and handed == self.pages_before_stop:
                raise Interrupted(f"stopped after {handed} page(s) of {stream}")
            yield page


def _case_emails(engine: Engine) -> set[str]:
    with Session(engine) as session:
        rows = session.execute(
            select(Activity.external_id).where(
                Activity.crm_object == mapping.EMAIL_STREAM,
                Activity.is_deleted.is_(False),  # type: ignore[attr-defined]
            )
        )
        return set(rows.scalars())


@pytest.fixture
def org() -> SandboxOrg:
    return SandboxOrg(generate_org(anchor=ANCHOR, **SIZES))


@pytest.fixture
def server(org: SandboxOrg, tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(org, cert_dir=tmp_path / "org") as server:
        yield server


def _page_counts(server: SandboxServer) -> dict[str, int]:
    """How many pages a full read hands over, per stream (counted through the connector, not the sync)."""
    connector = SalesforceConnector(fast_config(server, page_size=200))
    return {stream: sum(1 for _ in connector.pages(stream, since=None)) for stream in connector.streams}


def test_a_full_read_stopped_after_any_page_and_resumed_equals_the_org(
    engine: Engine, org: SandboxOrg, server: SandboxServer
) -> None:
    config = fast_config(server, page_size=200)  # the smallest page Salesforce serves: streams of several pages
    assert run_sync(engine, SalesforceConnector(config), connection_name="sandbox").status == "ok"
    assert_local_equals_org(engine, org, config)
    taskless = _case_emails(engine)
    assert len(taskless) >= 5, "the world has e-mails without a task (on cases)"

    counts = _page_counts(server)
    assert counts[mapping.EMAIL_STREAM] >= 2 and counts["Task"] >= 2, counts
    stops = [(stream, n) for stream, total in counts.items() for n in range(1, total)]
    for stream, n in stops:
        # a full re-read (what `okrsync sync --full` and a worker's forced full pass do), stopped after n pages
        with pytest.raises(Interrupted):
            run_sync(engine, StopsAfter(SalesforceConnector(config), stream, n), connection_name="sandbox", full=True)
        resumed = run_sync(engine, SalesforceConnector(config), connection_name="sandbox")
        assert resumed.status == "ok", (stream, n, resumed.error)
        assert _case_emails(engine) == taskless, f"stopped after {n} page(s) of {stream}"
        assert_local_equals_org(engine, org, config)
    with Session(engine) as session:
        statuses = [r.status for r in session.execute(select(SyncRun).order_by(SyncRun.id)).scalars()]
    assert statuses == ["ok"] + ["failed", "ok"] * len(stops)
