"""SQLite: the planner's statistics read again, every index entry this time (no schema change).

Why: okrsync analyzed SQLite with ``PRAGMA analysis_limit=2000``, which reads about 2,000 entries from the start of
each index. Every index of the CRM tables starts with the connection, then an owner, an account or a kind, so the
sample saw one connection and one owner: at a million activities sqlite_stat1 said 2,001 activities per connection
and per owner (in truth 1,014,895 and 101,490). The planner then chose indexes by those figures: an incremental
run's response-time statement for 101 accounts walked every inquiry of the team (2 s a statement, 14 s a run) and a
distinct count of contacts read all contact links. ``kit.db.full_statistics`` has the details.

Existing data: nothing changes but sqlite_stat1. Each table that has statistics is analyzed again in full (0.74 s
for a million activities, 2.5 s for 3.9 million evidence rows, 4.7 s for the bench's whole 2.5 GB file); a table
never analyzed is left so. PostgreSQL: nothing to do (its ANALYZE samples rows at random across the table).
Downgrade: nothing to undo (statistics are not schema; the sampled ones are not brought back).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 (written by hand, checked by tests/service/kit/test_migrations.py)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from service.kit.migrations.statistics import analyze_where_analyzed

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is None:
        return  # never analyzed
    analyzed = [row[0] for row in bind.exec_driver_sql("SELECT DISTINCT tbl FROM sqlite_stat1 ORDER BY tbl")]
    for table in analyzed:
        analyze_where_analyzed(table)


def downgrade() -> None:
    pass
