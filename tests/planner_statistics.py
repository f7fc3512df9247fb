"""SQLite's planner statistics of ix_activity_owner_kind_time, as stored and as counted, for the tests that check
okrsync reads them in full (``kit.db.full_statistics``): tests/service/sync/test_analyze.py and
tests/service/kit/test_migrations.py."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

OWNER_INDEX_PREFIXES = (
    "connection_id",
    "connection_id, owner_id",
    "connection_id, owner_id, activity_kind",
    "connection_id, owner_id, activity_kind, occurred_at",
)


def owner_index_statistics(engine: Engine) -> list[int]:
    """sqlite_stat1 of ix_activity_owner_kind_time: rows, then the average rows per distinct prefix ([] if none)."""
    with engine.connect() as conn:
        stat = conn.execute(text("SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_activity_owner_kind_time'")).scalar()
    return [int(n) for n in str(stat).split()] if stat is not None else []


def owner_index_counted(engine: Engine) -> list[int]:
    """The same figures counted by SELECT DISTINCT, independently of SQLite's ANALYZE."""
    with engine.connect() as conn:
        rows = int(conn.execute(text("SELECT count(*) FROM activity")).scalar_one())
        distinct = [
            int(conn.execute(text(f"SELECT count(*) FROM (SELECT DISTINCT {columns} FROM activity)")).scalar_one())
            for columns in OWNER_INDEX_PREFIXES
        ]
    return [rows, *[average(rows, n) for n in distinct]]


def average(rows: int, distinct: int) -> int:
    """Rows per distinct prefix as SQLite's ANALYZE writes it (analyze.c, statGet): rounded up, and 1 where that
    gives 2 for a nearly unique prefix (rows ≤ 1.1 × distinct)."""
    value = -(-rows // distinct)
    return 1 if value == 2 and rows * 10 <= distinct * 11 else value
