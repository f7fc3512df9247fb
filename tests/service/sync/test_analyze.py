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
        assert _owner_index_statistics(engine) == _owner_index_counted(engine)


def _owner_index_statistics(engine: Engine) -> list[int]:
    """SQLite's statistics of ix_activity_owner_kind_time: rows, then average rows per distinct prefix."""
    with engine.connect() as conn:
        stat = conn.execute(text("SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_activity_owner_kind_time'")).scalar()
    return [int(n) for n in str(stat).split()]


def _owner_index_counted(engine: Engine) -> list[int]:
    """The same figures counted (as SQLite rounds them: ``_average``). A sampled ANALYZE (``analysis_limit=2000``, as
    okrsync ran until migration 0020) gave 2,001 rows per connection and per owner for any table larger than that."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM activity")).scalar_one()
        prefixes = [
            conn.execute(text(f"SELECT count(*) FROM (SELECT DISTINCT {columns} FROM activity)")).scalar_one()
            for columns in (
                "connection_id", "connection_id, owner_id", "connection_id, owner_id, activity_kind",
                "connection_id, owner_id, activity_kind, occurred_at",
            )
        ]  # fmt: skip
    assert rows > 2_001 and prefixes[0] == 2  # two connections: the small one and the large one
    return [rows, *[_average(rows, distinct) for distinct in prefixes]]


def _average(rows: int, distinct: int) -> int:
    """Rows per distinct prefix as SQLite's ANALYZE writes it (analyze.c, statGet): rounded up, and 1 where that
    gives 2 for a nearly unique prefix (rows ≤ 1.1 × distinct)."""
    value = -(-rows // distinct)
    return 1 if value == 2 and rows * 10 <= distinct * 11 else value
