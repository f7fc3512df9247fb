"""Path and query parameters shared by the API and the dashboard, bounded where the database's columns are.

An id or offset beyond what the database's columns hold used to reach the database and come back as a 500; bounded here,
it is a 422 naming the parameter (API) or the dashboard's "not found" page."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

# ids are INTEGER columns (32-bit on PostgreSQL): anything larger cannot exist, and PostgreSQL refuses to compare
INT_MAX = 2**31 - 1
# far beyond any page a person scrolls to, and well inside every database's OFFSET
OFFSET_MAX = 10_000_000

MappingId = Annotated[int, Path(ge=1, le=INT_MAX, description="The mapping's id (GET /api/v1/mappings)")]
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX, description="How many rows to skip")]
# a row id passed along in a query (the check-in just recorded, to highlight it); 0: none
RowId = Annotated[int, Query(ge=0, le=INT_MAX, description="A row's id, 0 for none")]
