"""PostgreSQL: the evidence page indexes hold the row id (INCLUDE), so a page is an index-only walk to its offset.

Why: ``report.evidence`` (the API's and the dashboard's pages of evidence, ``okrsync explain``) now finds a page's
row ids first, in the index that holds the rows in page order, and reads only those rows. On PostgreSQL an index
walk that must also return the id visited every row before the offset unless the id is in the index: the last page
of the largest key result at a million activities (728,317 rows) took 1.3 s (the planner sorted them all instead),
0.18 s with the id included (after the table was vacuumed, ``kit.db.vacuum``). SQLite's indexes hold the rowid (the
id) already: nothing changes there.

Existing rows: kept; the two indexes are dropped and built again from them on PostgreSQL (about 20 s per million
evidence rows).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 (written by hand, checked with alembic check)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE: list[str | sa.TextClause] = ["mapping_id", "kr_key", "part", sa.text("occurred_at DESC"), "record_id"]
OWNER_PAGE: list[str | sa.TextClause] = [
    "mapping_id",
    "kr_key",
    "owner_id",
    "part",
    sa.text("occurred_at DESC"),
    "record_id",
]


def _rebuild(include: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    pages: list[tuple[str, list[str | sa.TextClause]]] = [
        ("ix_evidence_page", PAGE),
        ("ix_evidence_owner_page", OWNER_PAGE),
    ]
    for name, columns in pages:
        op.drop_index(name, table_name="key_result_evidence")
        op.create_index(name, "key_result_evidence", columns, unique=False, postgresql_include=include)


def upgrade() -> None:
    _rebuild(["id"])


def downgrade() -> None:
    _rebuild([])
