"""Indexes for the records dated since the last computation: activities by completion, opportunities by creation.

Why: an incremental computation later in the day takes in the records dated between the last computation and now
(``compute.service._take_in_passed_dates``: a meeting planned for the afternoon counts once it has started, a
meeting counted by its end once it has ended). Activities are found by ``occurred_at`` through
ix_activity_kind_time; without these two indexes, those counted by ``completed_at`` and the opportunities by
``created_at`` were found by reading every row: at a million activities and 100,000 opportunities about 0.6 s and
0.2 s of every such run (SQLite).

Existing rows: kept; the indexes are built from them (about 3 s per million activities on SQLite), then the two
tables are analyzed again where they were analyzed before (see ``statistics.analyze_where_analyzed``).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 (written by hand, checked by tests/service/kit/test_migrations.py)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from service.kit.migrations.statistics import analyze_where_analyzed

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_activity_completed": ("activity", ["connection_id", "completed_at"]),
    "ix_opportunity_created": ("opportunity", ["connection_id", "created_at"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns, unique=False)
        analyze_where_analyzed(table)


def downgrade() -> None:
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
