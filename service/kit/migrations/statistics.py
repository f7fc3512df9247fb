"""What migrations that add or rebuild an index of a large table run after it (0018 on; 0017 has its own copy)."""

from __future__ import annotations

from alembic import op

from service.kit.db import full_statistics


def analyze_where_analyzed(table: str) -> None:
    """The table's statistics again, the new index's among them, where the table had statistics: SQLite drops an
    index's row of sqlite_stat1 with it and has none for a new one, and then takes it for very selective (migration
    0017: an incremental run's look-up of 5 activities by id walked a whole index, 3.9 ms -> 26 ms). A database
    never analyzed is left so (its plans come from SQLite's defaults, as before). PostgreSQL is analyzed all the
    same (its statistics are per column; a new index changes nothing, a rebuilt one nothing either)."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        analyzed = (
            bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is not None
            and bind.exec_driver_sql("SELECT 1 FROM sqlite_stat1 WHERE tbl = ? LIMIT 1", (table,)).first() is not None
        )
        if not analyzed:
            return
        full_statistics(bind)  # as kit.db.analyze
    bind.exec_driver_sql(f'ANALYZE "{table}"')
