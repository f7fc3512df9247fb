"""While a sync runs the cyclic garbage collector runs rarely (service.sync.service._rare_collections); before and
after, also after a sync that failed, the process has its own thresholds (real sandbox Salesforce over HTTPS)."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy.engine import Engine

from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from service.sync.service import GC_FIRST_GENERATION, run_sync


def test_a_sync_collects_rarely_and_puts_the_thresholds_back(engine: Engine, config: SalesforceConfig) -> None:
    before = gc.get_threshold()
    assert before[0] < GC_FIRST_GENERATION
    during: list[tuple[int, int, int]] = []
    report = run_sync(
        engine,
        SalesforceConnector(config),
        connection_name="sandbox",
        progress=lambda *_: during.append(gc.get_threshold()),
    )
    assert report.status == "ok" and during
    assert {t[0] for t in during} == {GC_FIRST_GENERATION} and {t[1:] for t in during} == {before[1:]}
    assert gc.get_threshold() == before

    def fail(stream: str, fetched: int, total: int) -> None:
        raise RuntimeError("stopped midway")

    with pytest.raises(RuntimeError, match="stopped midway"):
        run_sync(engine, SalesforceConnector(config), connection_name="sandbox", progress=fail)
    assert gc.get_threshold() == before
