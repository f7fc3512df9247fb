"""ix_evidence_part_key holds only the evidence rows counted under a key (``WHERE related_id IS NOT NULL``).

Why: a full compute writes every evidence row into six indexes. ``related_id`` is the distinct key a row was
counted under (a distinct count's key, a response time's answer, a KAM activity's account); a plain count, a sum or
a ratio's part has none. At a million activities 3,039,357 of the 3,884,525 rows had none, and each was one more
index insertion: writing talk-time's 454,432 rows took 6.22 / 5.79 s with the full index and 5.17 / 5.34 s with the
partial one on the bench's SQLite file. Every look-up of this index names keys (``related_id IN …``,
``service.compute.repository``), which implies ``related_id IS NOT NULL``, so both databases still use it.

Existing rows: kept; the index is rebuilt from them (with far fewer entries) and the evidence is analyzed again where
it was analyzed (``statistics.analyze_where_analyzed``).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08 (written by hand, checked by tests/service/kit/test_migrations.py)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.kit.migrations.statistics import analyze_where_analyzed

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["mapping_id", "kr_key", "part", "related_id"]


def upgrade() -> None:
    op.drop_index("ix_evidence_part_key", table_name="key_result_evidence")
    op.create_index(
        "ix_evidence_part_key",
        "key_result_evidence",
        COLUMNS,
        unique=False,
        sqlite_where=sa.text("related_id IS NOT NULL"),
        postgresql_where=sa.text("related_id IS NOT NULL"),
    )
    analyze_where_analyzed("key_result_evidence")


def downgrade() -> None:
    op.drop_index("ix_evidence_part_key", table_name="key_result_evidence")
    op.create_index("ix_evidence_part_key", "key_result_evidence", COLUMNS, unique=False)
    analyze_where_analyzed("key_result_evidence")
