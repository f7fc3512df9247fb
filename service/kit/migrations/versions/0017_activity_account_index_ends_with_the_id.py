"""ix_activity_account ends with the activity's id: (connection_id, account_id, occurred_at, external_id).

Why: a response time's first answer to an inquiry is the earliest matching activity on its account, ties broken by
id (``mappings.query.response_evidence``: ORDER BY occurred_at, external_id LIMIT 1). With the index ending at
occurred_at, PostgreSQL fetched every later activity of the account and sorted them for each inquiry: the evidence
of one response time at a million activities (112,926 inquiries) read 2.2 million buffers and took 11.3 s of a
53 s full compute. With the id in the index the first matching entry is the answer: the full compute took 45 s
(bench/REFERENCE.md, 2026-12-07). SQLite sorted those ties in memory and is about as fast either way.

Existing rows: kept; the index is dropped and built again (about 2 s per million activities), then the table is
analyzed again where it was analyzed before (see ``_analyze``).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 (written by hand, checked by tests/service/kit/test_migrations.py)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_activity_account"


def _rebuild(columns: list[str]) -> None:
    with op.batch_alter_table("activity") as batch:
        batch.drop_index(NAME)
        batch.create_index(NAME, columns, unique=False)
    _analyze()


def _analyze() -> None:
    """The new index's statistics, where the table had them: SQLite drops an index's row of sqlite_stat1 with it,
    and without one it took the new index for very selective. On the bench's 100,000-activity file it then read
    the whole index to find 5 activities by id (an incremental run's narrowed records: 3.9 ms -> 26 ms). A database
    never analyzed is left so (its plans come from SQLite's defaults, as before). PostgreSQL keeps per-column
    statistics, which a new index does not change; it is analyzed all the same."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        analyzed = (
            bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is not None
            and bind.exec_driver_sql("SELECT 1 FROM sqlite_stat1 WHERE tbl = 'activity' LIMIT 1").first() is not None
        )
        if not analyzed:
            return
        bind.exec_driver_sql("PRAGMA analysis_limit=2000")  # as kit.db.analyze
    bind.exec_driver_sql("ANALYZE activity")


def upgrade() -> None:
    _rebuild(["connection_id", "account_id", "occurred_at", "external_id"])


def downgrade() -> None:
    _rebuild(["connection_id", "account_id", "occurred_at"])
