"""PostgreSQL: the evidence's text columns (kr_key, part, record_id, related_id, owner_id) compare byte by byte.

Why: every row a full compute writes into ``key_result_evidence`` enters six indexes, and each of their text
columns was compared in the database's collation, through the C library's ``strcoll`` (``C.UTF-8`` and
``en_US.utf8``, the official image's default, alike). These columns hold CRM ids and okrsync's own keys, which
nobody reads in alphabetical order: with ``COLLATE "C"`` equality is the same, the order is SQLite's (bytes), and a
full compute of the bench's 100,000-activity org on PostgreSQL took 12.5 s instead of 17.2 s
(``kit.db.byte_text``; bench/REFERENCE.md, 2026-12-07). SQLite compares bytes already: nothing changes there.

Existing rows: kept. PostgreSQL rebuilds the table's six indexes on the new collation, under a lock on the table:
161 s for the 3.9 million evidence rows of a million activities on a 2-core machine (the downgrade 174 s). The
one-shot ``okrsync db upgrade`` runs before the service starts (deploy/docker-compose.yml), so no compute waits.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 (written by hand, checked by tests/service/kit/test_migrations.py)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: list[tuple[str, int, bool]] = [  # name, length, nullable
    ("kr_key", 64, False),
    ("part", 16, False),
    ("record_id", 64, False),
    ("related_id", 64, True),
    ("owner_id", 64, True),
]


def _collate(collation: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.batch_alter_table("key_result_evidence") as batch:
        for name, length, nullable in COLUMNS:
            batch.alter_column(
                name, type_=sa.String(length, collation=collation), existing_type=sa.String(length),
                existing_nullable=nullable,
            )  # fmt: skip


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate(None)
