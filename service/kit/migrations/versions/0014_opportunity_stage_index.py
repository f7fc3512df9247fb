"""An index for the median days in stage of each stage (hygiene's stuck-in-stage rule against the team median).

Why: the medians were taken from every open team opportunity's age, fetched into Python: at 100,000 opportunities
(60,115 open in the team) 100 to 150 ms of each computation an opportunity changed. ``ix_opportunity_stage_open``
(connection, is_closed, is_deleted, stage, stage_entered_at, owner_id) holds each stage's open opportunities in the
order of their entry into it, so a stage's middle age is an index walk to it (``hygiene.stage_middle``): the
counts and the five stages' middles took about 30 ms on the same file.

Existing rows: kept; the index is built from them (well under a second per 100,000 opportunities).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 (written by hand, checked with alembic check)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_opportunity_stage_open",
        "opportunity",
        ["connection_id", "is_closed", "is_deleted", "stage", "stage_entered_at", "owner_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_opportunity_stage_open", table_name="opportunity")
