"""A large sync refreshes the planner statistics: compute queries were planned for empty tables otherwise. On
PostgreSQL it also vacuums the tables it filled (their pages all-visible: index-only scans then skip the rows);
a small sync does neither."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.server import SandboxServer
from service.sync.service import ANALYZE_AFTER_ROWS, run_sync
from tests.conftest import fast_config, small_org
from tests.planner_statistics import owner_index_counted, owner_index_statistics

pytestmark = pytest.mark.slow  # syncs an org large enough to trigger ANALYZE


def _analyzed(engine: Engine) -> bool:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            found = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
            return found is not None and conn.execute(text("SELECT count(*) FROM sqlite_stat1")).scalar_one() > 0
        row = conn.execute(text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'activity'")).first()
        return row is not None and row[0] is not None


def _vacuumed(engine: Engine) -> set[str]:
    """The sync's tables PostgreSQL has vacuumed (its own statistics)."""
    with engine.connect() as conn:  # a new connection: statistics are read once per transaction
        rows = conn.execute(
            text(
                "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() AND vacuum_count > 0"
                " AND relname IN ('activity', 'opportunity', 'account', 'contact', 'owner')"
            )
        )
        return {row[0] for row in rows}


def test_a_large_sync_analyzes_and_a_small_one_does_not(engine: Engine, tmp_path: Path) -> None:
    postgres = engine.dialect.name == "postgresql"
    small = small_org(activities=500, accounts=10, opportunities=10)
    with SandboxServer(small, cert_dir=tmp_path / "small") as server:
        run_sync(engine, SalesforceConnector(fast_config(server)), connection_name="small")
    assert not _analyzed(engine)
    if postgres:
        assert _vacuumed(engine) == set()
    large = small_org(activities=ANALYZE_AFTER_ROWS + 100)
    with SandboxServer(large, cert_dir=tmp_path / "large") as server:
        run_sync(engine, SalesforceConnector(fast_config(server)), connection_name="large")
    assert _analyzed(engine)
    if postgres:
        assert _vacuumed(engine) == {"activity", "opportunity", "account", "contact", "owner"}
    else:
        # read in full: a sampled ANALYZE (analysis_limit=2000, as okrsync ran until migration 0020) said 2,001 rows
        # per connection and per owner for any table larger than that
        counted = owner_index_counted(engine)
        assert counted[0] > 2_001
        assert owner_index_statistics(engine) == counted
