"""ix_activity_lead holds only the activities logged on a lead (a partial index: ``WHERE lead_id IS NOT NULL``).

Why: SQLite's statistics count the rows without a lead as one more value of lead_id. Over a HubSpot connection no
activity has a lead (a HubSpot lead is a contact), so sqlite_stat1 said "1,034,309 activities per lead" at a million
activities, and speed to lead's answers logged on the lead (``mappings.query.speed_to_lead_evidence``) walked
ix_activity_owner_kind_time instead: 1.6-1.9 s for a changed meeting on an account with leads, most of a webhook's
pass. Once the statistics were read in full (0020) this showed in every such pass; a partial index is described by
its own rows only. The query's ``lead_id = …`` implies ``lead_id IS NOT NULL``, so both databases can use it.

Existing rows: kept; the index is rebuilt from them (it holds far fewer entries than before) and the activities
are analyzed again where they were analyzed (``statistics.analyze_where_analyzed``).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 (written by hand, checked by tests/service/kit/test_migrations.py)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.kit.migrations.statistics import analyze_where_analyzed

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_activity_lead", table_name="activity")
    op.create_index(
        "ix_activity_lead",
        "activity",
        ["connection_id", "lead_id"],
        unique=False,
        sqlite_where=sa.text("lead_id IS NOT NULL"),
        postgresql_where=sa.text("lead_id IS NOT NULL"),
    )
    analyze_where_analyzed("activity")


def downgrade() -> None:
    op.drop_index("ix_activity_lead", table_name="activity")
    op.create_index("ix_activity_lead", "activity", ["connection_id", "lead_id"], unique=False)
    analyze_where_analyzed("activity")
