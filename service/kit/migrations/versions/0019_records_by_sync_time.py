"""An index per synced record table on (connection_id, synced_at): what the syncs wrote since a time.

Why: every loop pass (each webhook's, each timer's) asks, for each mapping, which records the syncs wrote since its
last computation (``compute.repository.changed_since``, the incremental compute's starting point). Without an
index on the sync time that read every row of the six tables: 4.5 to 7.4 s at a million activities on SQLite (the
bench's file), more than all the rest of a webhook's pass.

Existing rows: kept; the indexes are built from them (a few seconds per million activities), then the tables are
analyzed again where they were analyzed before (``statistics.analyze_where_analyzed``).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 (written by hand, checked by tests/service/kit/test_migrations.py)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from service.kit.migrations.statistics import analyze_where_analyzed

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ["account", "contact", "opportunity", "opportunity_contact", "activity", "lead"]


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_synced", table, ["connection_id", "synced_at"], unique=False)
        analyze_where_analyzed(table)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_synced", table_name=table)
