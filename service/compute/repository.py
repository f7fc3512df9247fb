"""All SQL of the compute domain. Functions take a Session and never commit: the compute job commits once."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlmodel
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    MetaData,
    Select,
    Table,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from mappings.metrics import AnsweredWaits, PartTotal, UnansweredWaits, Wait, unanswered_summary
from mappings.sql import Tables
from service.compute.models import (
    Computation,
    HygieneFinding,
    HygieneSummary,
    KamAccountScore,
    KamCriterionResult,
    KeyResultContribution,
    KeyResultEvidence,
    KeyResultHistory,
    KeyResultPartTotal,
    KeyResultValue,
    ObjectiveValue,
)
from service.crm.models import (
    Account,
    Activity,
    ActivityContact,
    Contact,
    Lead,
    Opportunity,
    OpportunityContact,
    Owner,
)
from service.kit.db import full_statistics
from service.okrs.models import KamAssessment, ManualValue
from service.sync.models import SyncRun

ID_CHUNK = 1000


def table(model: Any) -> Any:
    """A SQLModel class's Core table (typed loosely: SQLModel does not declare ``__table__``)."""
    return model.__table__


EVIDENCE = table(KeyResultEvidence)
SUMMARY = table(HygieneSummary)
FINDING = table(HygieneFinding)


def local_tables() -> Tables:
    t = table
    return Tables(
        activity=t(Activity),
        opportunity=t(Opportunity),
        account=t(Account),
        contact=t(Contact),
        owner=t(Owner),
        opportunity_contact=t(OpportunityContact),
        activity_contact=t(ActivityContact),
        lead=t(Lead),
    )


# SQLite's page cache for a computation (KiB). A full compute writes millions of evidence rows into five indexes
# each: with SQLite's default 2 MB cache every insert into an index larger than it read its pages back from the
# file (454,432 rows of one key result at a million activities: 8.8-12.4 s with 2 MB, 8.4 s with 64 MB, 6.3 s with
# 128 MB, 5.1 s with 256 MB). The connection's own size is restored afterwards, so pooled connections keep the
# small default. The temporary tables' cache (``replace_evidence``'s rows to compare, 728,317 for the largest key
# result) gets its own: with 2 MB a full compute with its evidence stored spent 53 s of 143 s in the kernel reading
# them back, 26 s of 99 s with 64 MB.
#
# What a computation can hold is about twice the main cache plus the temporary one: SQLite's sorter (a window
# function's or GROUP BY's rows, e.g. a distinct count's first record per key) keeps up to the main cache's size in
# memory before it spills to a file. With 64 MB for both, the full compute at a million activities peaked at
# 359.6 MB (deals-touched: its first activity per opportunity sorted while FRESH filled); 48 MB + 16 MB peaked at
# 271-272 MB, 32 MB + 16 MB at 239 MB, in the same 61-81 s the full compute took with 64 + 64 MB on this machine
# (bench/REFERENCE.md, 2026-12-07). The goal is 300 MB.
COMPUTE_CACHE_KIB = 49_152
COMPUTE_TEMP_CACHE_KIB = 16_384


@contextmanager
def compute_cache(session: Session) -> Iterator[None]:
    """A larger SQLite page cache for the duration of a computation (a no-op on PostgreSQL)."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    before = session.execute(text("PRAGMA cache_size")).scalar()
    temp_before = session.execute(text("PRAGMA temp.cache_size")).scalar()
    session.execute(text(f"PRAGMA cache_size=-{COMPUTE_CACHE_KIB}"))
    session.execute(text(f"PRAGMA temp.cache_size=-{COMPUTE_TEMP_CACHE_KIB}"))
    try:
        yield
    finally:
        session.execute(text(f"PRAGMA cache_size={int(before or -2000)}"))
        session.execute(text(f"PRAGMA temp.cache_size={int(temp_before or -2000)}"))


def chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), ID_CHUNK):
        yield items[start : start + ID_CHUNK]


def owner_ids_by_email(session: Session, *, connection_id: int, emails: Sequence[str]) -> dict[str, str]:
    """Lower-cased e-mail → owner id among the synced, not deleted owners of the connection."""
    owner = table(Owner)
    rows = session.execute(
        select(func.lower(owner.c.email), owner.c.external_id).where(
            owner.c.connection_id == connection_id,
            owner.c.is_deleted == false(),
            func.lower(owner.c.email).in_([e.lower() for e in emails]),
        )
    ).all()
    return {email: owner_id for email, owner_id in rows}


EVIDENCE_COLUMNS = ["mapping_id", "kr_key", "part", "record_id", "owner_id", "value", "occurred_at", "related_id"]
# an evidence row's own columns, in the order of ``evidence_row``'s arguments
ROW_COLUMNS = [EVIDENCE.c[name] for name in EVIDENCE_COLUMNS[2:]]


def _row_of(evidence_query: Any) -> list[Any]:
    """An evidence query's (a subquery's) columns in the order of ``ROW_COLUMNS``."""
    return [evidence_query.c[column.name] for column in ROW_COLUMNS]


def insert_evidence(
    session: Session, *, mapping_id: int, kr_key: str, query: Select[Any], params: dict[str, Any] | None = None
) -> None:
    """INSERT … SELECT of ``query``'s rows as the key result's evidence (``params``: the query's parameters, e.g.
    a narrowed query's ids)."""
    source = select(literal(mapping_id), literal(kr_key), *_row_of(query.subquery("evidence")))
    session.execute(insert(EVIDENCE).from_select(EVIDENCE_COLUMNS, source), params)


# A key result's rows as a full compute selects them, held apart before they are compared with the stored ones
# (``replace_evidence``): a temporary table of the connection's own, with one index, emptied before and after use.
FRESH = Table(
    "okrsync_fresh_evidence",
    MetaData(),
    *[Column(column.name, column.type) for column in ROW_COLUMNS],
    prefixes=["TEMPORARY"],
)
FRESH_INDEX = Index("ix_okrsync_fresh_evidence", FRESH.c.part, FRESH.c.record_id)


def empty_fresh(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"TRUNCATE {FRESH.name}"))
    else:  # SQLite empties a table deleted from without a condition in one step
        session.execute(delete(FRESH))


def _same_row(a: Any, b: Any) -> list[Any]:
    """Two evidence rows' own columns equal, NULL equal to NULL (IS on SQLite, IS NOT DISTINCT FROM on
    PostgreSQL); part and record_id, never NULL, compared plainly so that an index finds them."""
    return [a.c.part == b.c.part, a.c.record_id == b.c.record_id] + [
        a.c[column.name].is_not_distinct_from(b.c[column.name])
        for column in ROW_COLUMNS
        if column.name not in ("part", "record_id")
    ]


def replace_evidence(session: Session, *, mapping_id: int, kr_key: str, queries: Sequence[Select[Any]]) -> None:
    """Make the key result's evidence exactly the rows ``queries`` select.

    With no rows stored, they are inserted. Otherwise only the difference is written: the rows are selected into
    a temporary table (``FRESH``), the stored rows it does not hold are deleted and its rows not stored are
    inserted. From one day's full compute to the next almost every row is the same: deleting and inserting them
    all cost six index deletions and six index insertions a row (3.9 million rows at a million activities). Rows
    kept keep their ids; the evidence pages order by date and record, never by id."""
    mine = (EVIDENCE.c.mapping_id == mapping_id, EVIDENCE.c.kr_key == kr_key)
    if session.execute(select(literal(1)).where(*mine).limit(1)).first() is None:
        for query in queries:
            insert_evidence(session, mapping_id=mapping_id, kr_key=kr_key, query=query)
        return
    _fill_fresh(session, queries)
    gone = select(EVIDENCE.c.id).where(*mine, ~exists().where(*_same_row(FRESH, EVIDENCE)))
    session.execute(delete(EVIDENCE).where(EVIDENCE.c.id.in_(gone)))
    stored = select(literal(1)).where(*mine, *_same_row(EVIDENCE, FRESH))
    new = select(literal(mapping_id), literal(kr_key), *_row_of(FRESH)).where(~stored.exists())
    session.execute(insert(EVIDENCE).from_select(EVIDENCE_COLUMNS, new))
    empty_fresh(session)


def _fill_fresh(session: Session, queries: Sequence[Select[Any]], params: dict[str, Any] | None = None) -> None:
    """``FRESH`` holding exactly the rows ``queries`` select (executed with ``params``)."""
    FRESH.create(session.connection(), checkfirst=True)  # a temporary table lives as long as the database connection
    empty_fresh(session)
    names = [column.name for column in ROW_COLUMNS]
    for query in queries:
        session.execute(insert(FRESH).from_select(names, select(*_row_of(query.subquery("evidence")))), params)


def select_into_fresh(session: Session, queries: Sequence[Select[Any]]) -> set[EvidenceRow]:
    """What ``queries`` select now, held in ``FRESH`` until ``put_fresh_records`` or ``empty_fresh``, and returned
    as ``evidence_row``s read back from it (the evidence table's own column types). Each query runs once: its rows
    are written from here, not selected again."""
    _fill_fresh(session, queries)
    return {evidence_row(*row) for row in session.execute(select(*[FRESH.c[c.name] for c in ROW_COLUMNS]))}


def put_fresh_records(session: Session, *, mapping_id: int, kr_key: str, part: str, record_ids: Sequence[str]) -> None:
    """Replace one part's stored rows of ``record_ids`` by ``FRESH``'s rows of them (``select_into_fresh``); the
    key result's other rows stay as they are."""
    for chunk in chunks(record_ids):
        ids = list(chunk)
        session.execute(delete(EVIDENCE).where(*_part_rows(mapping_id, kr_key, part, ids, None)))
        rows = select(literal(mapping_id), literal(kr_key), *[FRESH.c[c.name] for c in ROW_COLUMNS]).where(
            FRESH.c.part == part, FRESH.c.record_id.in_(ids)
        )
        session.execute(insert(EVIDENCE).from_select(EVIDENCE_COLUMNS, rows))


def copy_records(
    session: Session, *, mapping_id: int, source: str, target: str, part: str, record_ids: Sequence[str]
) -> None:
    """Give ``target`` the stored rows of ``source`` for ``record_ids`` in one part (two key results over the same
    records, ``source`` brought up to date first), replacing its own rows of them."""
    for chunk in chunks(record_ids):
        ids = list(chunk)
        session.execute(delete(EVIDENCE).where(*_part_rows(mapping_id, target, part, ids, None)))
        rows = select(literal(mapping_id), literal(target), *ROW_COLUMNS).where(
            *_part_rows(mapping_id, source, part, ids, None)
        )
        session.execute(insert(EVIDENCE).from_select(EVIDENCE_COLUMNS, rows))


def has_evidence_rows(session: Session, *, mapping_id: int, at_least: int) -> bool:
    """Whether the mapping has ``at_least`` evidence rows (reads that many index entries at most)."""
    query = select(literal(1)).where(EVIDENCE.c.mapping_id == mapping_id).offset(at_least - 1).limit(1)
    return session.execute(query).first() is not None


def analyze_results(session: Session) -> None:
    """Refresh the planner's statistics of the tables a full compute fills (as a sync does for what it writes).
    PostgreSQL, still believing the evidence table nearly empty after a first full compute wrote 3.9 million rows,
    walked a key result's every row per look-up: an incremental run took 8.9 s at a million activities."""
    if session.get_bind().dialect.name == "sqlite":
        full_statistics(session)  # every entry read: 2.5 s for 3.9 million evidence rows
    for name in (EVIDENCE.name, FINDING.name):
        session.execute(text(f"ANALYZE {name}"))


def copy_evidence(session: Session, *, mapping_id: int, source: str, target: str) -> None:
    """Give ``target`` the evidence rows of ``source`` (two KRs over the same records), writing only the
    difference (``replace_evidence``)."""
    rows = select(*ROW_COLUMNS).where(EVIDENCE.c.mapping_id == mapping_id, EVIDENCE.c.kr_key == source)
    replace_evidence(session, mapping_id=mapping_id, kr_key=target, queries=[rows])


def delete_evidence(
    session: Session,
    *,
    mapping_id: int,
    kr_key: str,
    part: str,
    record_ids: Sequence[str] | None = None,
    related_ids: Sequence[str] | None = None,
) -> None:
    """Evidence rows of some records (or of some distinct keys) of one part of a KR."""
    session.execute(delete(EVIDENCE).where(*_part_rows(mapping_id, kr_key, part, record_ids, related_ids)))


def _part_rows(
    mapping_id: int, kr_key: str, part: str, record_ids: Sequence[str] | None, related_ids: Sequence[str] | None
) -> list[Any]:
    """The conditions for one part's evidence rows of some records (or of some distinct keys)."""
    where = [EVIDENCE.c.mapping_id == mapping_id, EVIDENCE.c.kr_key == kr_key, EVIDENCE.c.part == part]
    if record_ids is not None:
        where.append(EVIDENCE.c.record_id.in_(list(record_ids)))
    if related_ids is not None:
        where.append(EVIDENCE.c.related_id.in_(list(related_ids)))
    return where


def evidence_keys(
    session: Session, *, mapping_id: int, kr_key: str, part: str, record_ids: Sequence[str]
) -> set[str | None]:
    """The distinct keys (related_id) the given records were counted under."""
    return _evidence_column(session, mapping_id, kr_key, part, wanted="related_id", by="record_id", values=record_ids)


EvidenceRow = tuple[str, str, str | None, float | None, float | None, str | None]


def evidence_row(part: str, record_id: str, owner: str | None, value: Any, at: Any, related: Any) -> EvidenceRow:
    """An evidence row in one comparable shape, whether it was read back from the table or selected from the CRM
    copy (timestamps as epoch seconds, numbers as floats)."""
    stamp = at.timestamp() if isinstance(at, datetime) else None
    return (part, record_id, owner, None if value is None else float(value), stamp, related)


def stored_evidence(
    session: Session,
    *,
    mapping_id: int,
    kr_key: str,
    part: str,
    record_ids: Sequence[str] | None = None,
    related_ids: Sequence[str] | None = None,
) -> set[EvidenceRow]:
    """One part's stored evidence rows of some records (or of some distinct keys), as ``evidence_row``s."""
    return _stored_rows(session, _part_rows(mapping_id, kr_key, part, record_ids, related_ids))


def _stored_rows(session: Session, where: Sequence[Any]) -> set[EvidenceRow]:
    query = select(*ROW_COLUMNS).where(*where)
    return {evidence_row(*row) for row in session.execute(query)}


def swap_if_changed(
    session: Session,
    *,
    mapping_id: int,
    kr_key: str,
    part: str,
    query: Select[Any],
    params: dict[str, Any] | None = None,
    totals: bool = False,
    waits: WaitTotals | None = None,
    record_ids: Sequence[str] | None = None,
    related_ids: Sequence[str] | None = None,
    known: tuple[set[EvidenceRow], set[EvidenceRow]] | None = None,
) -> set[str]:
    """Replace one part's stored rows of some records (``record_ids``) or distinct keys (``related_ids``) by what
    ``query`` selects now (executed with ``params``), unless they are the same already; the records whose rows
    changed (none: nothing).

    ``totals``: the key result's stored part totals (``key_result_part_total``) lose what the old rows summed up
    to and gain what the new rows sum up to, each summed by the same SQL a full recompute sums with. ``waits``: a
    wall-clock wait's answered counts likewise (``adjust_wait_totals``). ``known``: the rows before and after, already
    read (``stored_parts_of`` and ``selected_parts``)."""
    where = _part_rows(mapping_id, kr_key, part, record_ids, related_ids)
    before, after = known or (_stored_rows(session, where), selected_evidence(session, query, params))
    if before == after:
        return set()
    removed = _grouped_totals(session, where) if totals else []
    session.execute(delete(EVIDENCE).where(*where))
    insert_evidence(session, mapping_id=mapping_id, kr_key=kr_key, query=query, params=params)
    if totals:
        _adjust_totals(session, mapping_id, kr_key, removed, _grouped_totals(session, where))
    if waits is not None:
        adjust_wait_totals(session, mapping_id=mapping_id, kr_key=kr_key, waits=waits, removed=before, added=after)
    return {row[1] for row in before ^ after}


def stored_parts_of(
    session: Session, *, mapping_id: int, parts: set[tuple[str, str]], record_ids: Sequence[str]
) -> dict[tuple[str, str], set[EvidenceRow]]:
    """The stored evidence rows of some records in several (key result, part)s, in one SELECT (the lists of keys,
    parts and ids probe ix_evidence_part_record)."""
    found: dict[tuple[str, str], set[EvidenceRow]] = {}
    if not parts or not record_ids:
        return found
    query = select(EVIDENCE.c.kr_key, *ROW_COLUMNS).where(
        EVIDENCE.c.mapping_id == mapping_id,
        EVIDENCE.c.kr_key.in_(sorted({k for k, _p in parts})),
        EVIDENCE.c.part.in_(sorted({p for _k, p in parts})),
        EVIDENCE.c.record_id.in_(list(record_ids)),
    )
    for kr_key, *row in session.execute(query):
        if (kr_key, row[0]) in parts:
            found.setdefault((kr_key, row[0]), set()).add(evidence_row(*row))
    return found


def selected_parts(
    session: Session, queries: Sequence[tuple[str, Select[Any]]], params: dict[str, Any]
) -> dict[tuple[str, str], set[EvidenceRow]]:
    """What several key results' evidence queries select now, in one UNION ALL executed with ``params``: (key
    result, part) → rows."""
    found: dict[tuple[str, str], set[EvidenceRow]] = {}
    members = []
    for kr_key, query in queries:
        members.append(select(literal(kr_key).label("kr_key"), *_row_of(query.subquery())))
    if not members:
        return found
    for kr_key, *row in session.execute(union_all(*members) if len(members) > 1 else members[0], params):
        found.setdefault((kr_key, row[0]), set()).add(evidence_row(*row))
    return found


def selected_evidence(session: Session, query: Select[Any], params: dict[str, Any] | None = None) -> set[EvidenceRow]:
    """What an evidence query selects now (executed with ``params``), as ``evidence_row``s."""
    return {evidence_row(*row) for row in session.execute(select(*_row_of(query.subquery("evidence"))), params)}


def _evidence_column(
    session: Session, mapping_id: int, kr_key: str, part: str, *, wanted: str, by: str, values: Iterable[str]
) -> set[Any]:
    """Column ``wanted`` of one part's evidence rows whose column ``by`` is one of ``values``."""
    found: set[Any] = set()
    for chunk in chunks(sorted(values)):
        rows = session.execute(
            select(EVIDENCE.c[wanted]).where(
                EVIDENCE.c.mapping_id == mapping_id,
                EVIDENCE.c.kr_key == kr_key,
                EVIDENCE.c.part == part,
                EVIDENCE.c[by].in_(list(chunk)),
            )
        ).all()
        found.update(row[0] for row in rows)
    return found


def ids_where(
    session: Session, *, model: Any, connection_id: int, column: str, values: Iterable[str], select_column: str = ""
) -> set[str]:
    """``select_column`` (default the external id) of the connection's ``model`` rows whose ``column`` is one of
    ``values``: the activities on some accounts, the opportunities of some contacts (link tables), etc."""
    t = table(model)
    wanted = t.c[select_column or "external_id"]
    found: set[str] = set()
    for chunk in chunks(sorted(values)):
        rows = session.execute(
            select(wanted).where(t.c.connection_id == connection_id, t.c[column].in_(list(chunk)), wanted.is_not(None))
        ).all()
        found.update(row[0] for row in rows)
    return found


def dated_between(
    session: Session,
    *,
    model: Any,
    connection_id: int,
    column: str,
    since: datetime,
    until: datetime,
    kinds: Sequence[str] = (),
) -> set[str]:
    """Ids of the connection's ``model`` rows whose ``column`` lies in [since, until], deleted ones too.

    ``kinds``: the activity kinds to look in (all of them): the connection, the kind and the time are the order of
    ix_activity_kind_time, so the look-up is one short index range per kind."""
    t = table(model)
    clauses = [t.c.connection_id == connection_id, t.c[column] >= since, t.c[column] <= until]
    if kinds:
        clauses.append(t.c.activity_kind.in_(list(kinds)))
    return {row[0] for row in session.execute(select(t.c.external_id).where(*clauses))}


def evidence_records(
    session: Session, *, mapping_id: int, kr_key: str, part: str, related_ids: Iterable[str]
) -> set[str]:
    """The records of one part of a KR counted with one of ``related_ids`` (e.g. the opportunity that followed)."""
    return _evidence_column(session, mapping_id, kr_key, part, wanted="record_id", by="related_id", values=related_ids)


def response_accounts(
    session: Session, *, mapping_id: int, kr_key: str, connection_id: int, activity_ids: Sequence[str]
) -> set[str]:
    """Accounts of the inquiries the given activities were, or answered, when last computed."""
    inquiries: set[str] = set()
    for chunk in chunks(activity_ids):
        ids = list(chunk)
        where = (EVIDENCE.c.mapping_id == mapping_id, EVIDENCE.c.kr_key == kr_key, EVIDENCE.c.part == "pair")
        # two look-ups, one per index (an OR of both made the planner read the key result's every row)
        for found in (
            session.execute(select(EVIDENCE.c.record_id).where(*where, EVIDENCE.c.record_id.in_(ids))),
            session.execute(select(EVIDENCE.c.record_id).where(*where, EVIDENCE.c.related_id.in_(ids))),
        ):
            inquiries.update(row[0] for row in found)
    return ids_where(
        session, model=Activity, connection_id=connection_id, column="external_id", values=inquiries,
        select_column="account_id",
    )  # fmt: skip


def _inquiries_on(mapping_id: int, kr_key: str, connection_id: int, accounts: Sequence[str]) -> list[Any]:
    """A response time's rows whose inquiry is an activity on one of ``accounts`` now."""
    activity = table(Activity)
    on_accounts = select(activity.c.external_id).where(
        activity.c.connection_id == connection_id, activity.c.account_id.in_(list(accounts))
    )
    return [
        EVIDENCE.c.mapping_id == mapping_id,
        EVIDENCE.c.kr_key == kr_key,
        EVIDENCE.c.part == "pair",  # a response time's only part: the indexes start with it
        EVIDENCE.c.record_id.in_(on_accounts),
    ]


def stored_inquiries_on(
    session: Session, *, mapping_id: int, kr_key: str, connection_id: int, accounts: Sequence[str]
) -> set[EvidenceRow]:
    """A response time's stored rows whose inquiry is an activity on one of ``accounts`` now, as ``evidence_row``s."""
    return _stored_rows(session, _inquiries_on(mapping_id, kr_key, connection_id, accounts))


MICROS = 1_000_000  # part totals add values up in millionths: whole numbers, exact in any order
TOTAL = table(KeyResultPartTotal)


def _micros_sum() -> Any:
    """The sum of the rows' values in millionths, each row's rounded to a whole number first. Every total, stored or
    grouped, full or incremental, is summed by this one expression, so a value's rounding is the same on every path
    (halves: away from zero in SQLite, as the platform rounds doubles in PostgreSQL)."""
    return func.coalesce(func.sum(cast(func.round(EVIDENCE.c.value * MICROS), BigInteger)), 0)


def _totals_query(where: Sequence[Any]) -> Select[Any]:
    """Rows, and their values in millionths, per (part, owner) of the evidence rows ``where`` picks (grouped by the
    columns as stored, so ix_evidence_value serves it in order)."""
    query = select(EVIDENCE.c.part, EVIDENCE.c.owner_id, func.count(), _micros_sum()).where(*where)
    return query.group_by(EVIDENCE.c.part, EVIDENCE.c.owner_id)


def _grouped_totals(session: Session, where: Sequence[Any]) -> list[tuple[str, str, int, int]]:
    """``_totals_query``'s rows, the owner "" for none."""
    return [
        (part, owner or "", int(n), int(micros)) for part, owner, n, micros in session.execute(_totals_query(where))
    ]


def _adjust_totals(
    session: Session,
    mapping_id: int,
    kr_key: str,
    removed: list[tuple[str, str, int, int]],
    added: list[tuple[str, str, int, int]],
) -> None:
    """Apply what some rows summed up to before (``removed``) and after (``added``) to the stored part totals; a
    total left with no rows is deleted, as a full recompute would not write it."""
    change: dict[tuple[str, str], tuple[int, int]] = {}
    for sign, rows in ((-1, removed), (1, added)):
        for part, owner, n, micros in rows:
            records, summed = change.get((part, owner), (0, 0))
            change[(part, owner)] = (records + sign * n, summed + sign * micros)
    rows_ = [
        {"mapping_id": mapping_id, "kr_key": kr_key, "part": part, "owner_id": owner, "records": n, "micros": m}
        for (part, owner), (n, m) in sorted(change.items())
        if n or m
    ]
    if not rows_:
        return
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = module.insert(TOTAL)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["mapping_id", "kr_key", "part", "owner_id"],
            set_={
                "records": TOTAL.c.records + stmt.excluded.records,
                "micros": TOTAL.c.micros + stmt.excluded.micros,
            },
        ),
        rows_,
    )
    session.execute(
        delete(TOTAL).where(TOTAL.c.mapping_id == mapping_id, TOTAL.c.kr_key == kr_key, TOTAL.c.records == 0)
    )


def delete_part_totals(session: Session, *, mapping_id: int, kr_key: str) -> None:
    session.execute(delete(TOTAL).where(TOTAL.c.mapping_id == mapping_id, TOTAL.c.kr_key == kr_key))


def store_part_totals(session: Session, *, mapping_id: int, kr_key: str) -> None:
    """Sum up a key result's evidence per (part, owner) into ``key_result_part_total``, replacing what was there."""
    delete_part_totals(session, mapping_id=mapping_id, kr_key=kr_key)
    grouped = _totals_query((EVIDENCE.c.mapping_id == mapping_id, EVIDENCE.c.kr_key == kr_key)).subquery()
    part, owner, records, micros = grouped.c
    source = select(literal(mapping_id), literal(kr_key), part, func.coalesce(owner, ""), records, micros)
    columns = ["mapping_id", "kr_key", "part", "owner_id", "records", "micros"]
    session.execute(insert(TOTAL).from_select(columns, source))


def stored_part_totals(session: Session, *, mapping_id: int, kr_key: str) -> list[PartTotal]:
    """A key result's stored totals per (part, owner), as ``store_part_totals`` and the swaps left them."""
    rows = session.execute(
        select(TOTAL.c.part, TOTAL.c.owner_id, TOTAL.c.records, TOTAL.c.micros).where(
            TOTAL.c.mapping_id == mapping_id, TOTAL.c.kr_key == kr_key
        )
    )
    return [PartTotal(part, owner or None, int(n), int(micros) / MICROS) for part, owner, n, micros in rows]


@dataclass(frozen=True)
class WaitTotals:
    """A wall-clock response time's or speed to lead's stored counts: per owner, the answered inquiries (part
    ``answered``) and those answered within ``limit`` seconds (part ``within``; none without a limit)."""

    limit: float | None


def _wait_counts(waits: WaitTotals, rows: Iterable[EvidenceRow]) -> list[tuple[str, str, int, int]]:
    """(part, owner, count, 0) of some pair rows, as ``_adjust_totals`` takes them."""
    found: dict[tuple[str, str], int] = {}
    for _part, _record, owner, value, _at, _related in rows:
        if value is None:
            continue
        found[("answered", owner or "")] = found.get(("answered", owner or ""), 0) + 1
        if waits.limit is not None and value <= waits.limit:
            found[("within", owner or "")] = found.get(("within", owner or ""), 0) + 1
    return [(part, owner, n, 0) for (part, owner), n in found.items()]


def adjust_wait_totals(
    session: Session,
    *,
    mapping_id: int,
    kr_key: str,
    waits: WaitTotals,
    removed: Iterable[EvidenceRow],
    added: Iterable[EvidenceRow],
) -> None:
    """Take the ``removed`` pair rows out of a wait key result's stored counts and put the ``added`` ones in: whole
    numbers, counted here from the rows themselves, so they end where counting all rows again ends."""
    _adjust_totals(session, mapping_id, kr_key, _wait_counts(waits, removed), _wait_counts(waits, added))


def store_wait_totals(session: Session, *, mapping_id: int, kr_key: str, waits: WaitTotals) -> None:
    """Count a wait key result's answered inquiries per owner (and those within its limit) into
    ``key_result_part_total``, replacing what was there."""
    delete_part_totals(session, mapping_id=mapping_id, kr_key=kr_key)
    rows = []
    for owner, answered in answered_waits(session, mapping_id=mapping_id, kr_key=kr_key, limit=waits.limit).items():
        rows.append({"part": "answered", "owner_id": owner, "records": answered.count})
        if waits.limit is not None and answered.within:
            rows.append({"part": "within", "owner_id": owner, "records": answered.within})
    if rows:
        session.execute(insert(TOTAL), [{"mapping_id": mapping_id, "kr_key": kr_key, "micros": 0, **r} for r in rows])


def stored_answered(session: Session, *, mapping_id: int, kr_key: str) -> dict[str, AnsweredWaits]:
    """A wait key result's stored counts per owner ("" for none), as ``answered_waits`` gives them without the
    longest wait (None: only a ``max`` needs it, and it reads ``answered_waits``)."""
    found: dict[str, dict[str, int]] = {}
    for total in stored_part_totals(session, mapping_id=mapping_id, kr_key=kr_key):
        found.setdefault(total.owner_id or "", {})[total.part] = total.records
    return {
        owner: AnsweredWaits(parts.get("answered", 0), parts.get("within", 0), None) for owner, parts in found.items()
    }


def part_totals(
    session: Session,
    *,
    mapping_id: int,
    kr_key: str,
    between: tuple[datetime | None, datetime | None] | None = None,
) -> list[PartTotal]:
    """Evidence grouped by (part, owner), summed in millionths as the stored totals are; ``between``: only records
    dated from the first bound to before the second."""
    where = [EVIDENCE.c.mapping_id == mapping_id, EVIDENCE.c.kr_key == kr_key]
    if between is not None:
        lower, upper = between
        if lower is not None:
            where.append(EVIDENCE.c.occurred_at >= lower)
        if upper is not None:
            where.append(EVIDENCE.c.occurred_at < upper)
    return [
        PartTotal(part, owner or None, n, micros / MICROS) for part, owner, n, micros in _grouped_totals(session, where)
    ]


def waits(session: Session, *, mapping_id: int, kr_key: str) -> list[Wait]:
    rows = session.execute(
        select(EVIDENCE.c.owner_id, EVIDENCE.c.occurred_at, EVIDENCE.c.value).where(
            EVIDENCE.c.mapping_id == mapping_id, EVIDENCE.c.kr_key == kr_key
        )
    ).all()
    return [Wait(owner, at, value) for owner, at, value in rows]


def _pairs(mapping_id: int, kr_key: str) -> tuple[Any, ...]:
    return (EVIDENCE.c.mapping_id == mapping_id, EVIDENCE.c.kr_key == kr_key, EVIDENCE.c.part == "pair")


def answered_waits(session: Session, *, mapping_id: int, kr_key: str, limit: float | None) -> dict[str, AnsweredWaits]:
    """Per owner ("" for none): answered inquiries, those answered within ``limit`` seconds, the longest wait;
    from ix_evidence_value alone."""
    within = (
        func.coalesce(func.sum(case((EVIDENCE.c.value <= limit, 1), else_=0)), 0) if limit is not None else literal(0)
    )
    query = (
        select(EVIDENCE.c.owner_id, func.count(), within, func.max(EVIDENCE.c.value))
        .where(*_pairs(mapping_id, kr_key), EVIDENCE.c.value.is_not(None))
        .group_by(EVIDENCE.c.owner_id)
    )
    return {
        owner or "": AnsweredWaits(int(n), int(inside), None if longest is None else float(longest))
        for owner, n, inside, longest in session.execute(query)
    }


def _unanswered(mapping_id: int, kr_key: str) -> tuple[Any, ...]:
    """A response time's unanswered pairs, through the partial, covering ix_evidence_wait (its condition written
    out): the NULLs come first in it."""
    return (
        EVIDENCE.c.mapping_id == mapping_id,
        EVIDENCE.c.kr_key == kr_key,
        EVIDENCE.c.part == literal_column("'pair'"),
        EVIDENCE.c.value.is_(None),
    )


def unanswered_waits(
    session: Session, *, mapping_id: int, kr_key: str, as_of: datetime, limit: float | None, with_waits: bool
) -> dict[str, UnansweredWaits]:
    """Per owner ("" for none) the inquiries nobody has answered yet: how many, how many are late by ``as_of``
    (arrived more than ``limit`` seconds before it; all without a limit), the longest late wait, and with
    ``with_waits`` every late wait (a percentile needs them: each arrival is read, ``metrics.unanswered_summary``).
    Without, summed up in the database: at a million activities the 2,800 unanswered inquiries of a key result
    took 23 ms to fetch one by one, their sums per owner 2 ms."""
    where = _unanswered(mapping_id, kr_key)
    if with_waits:
        arrivals = unanswered_arrivals(session, mapping_id=mapping_id, kr_key=kr_key)
        return unanswered_summary(arrivals, as_of=as_of, limit=limit, with_waits=True)
    is_late = EVIDENCE.c.occurred_at < as_of - timedelta(seconds=limit) if limit is not None else None
    late = func.coalesce(func.sum(case((is_late, 1), else_=0)), 0) if is_late is not None else func.count()
    earliest = func.min(case((is_late, EVIDENCE.c.occurred_at)) if is_late is not None else EVIDENCE.c.occurred_at)
    query = select(EVIDENCE.c.owner_id, func.count(), late, earliest).where(*where).group_by(EVIDENCE.c.owner_id)
    return {
        owner or "": UnansweredWaits(int(n), int(n_late), None if first is None else (as_of - first).total_seconds())
        for owner, n, n_late, first in session.execute(query)
    }


def unanswered_arrivals(session: Session, *, mapping_id: int, kr_key: str) -> list[tuple[str, datetime]]:
    """(owner or "", arrival) of each inquiry of a response time nobody has answered yet."""
    rows = session.execute(select(EVIDENCE.c.owner_id, EVIDENCE.c.occurred_at).where(*_unanswered(mapping_id, kr_key)))
    return [(owner or "", at) for owner, at in rows]


def waits_slice(
    session: Session, *, mapping_id: int, kr_key: str, owner: str | None, offset: int, count: int, total: int
) -> list[float]:
    """Answered waits ``offset`` … ``offset + count − 1`` in ascending order, of one owner ("": none) or of the
    whole team (None), of ``total`` answered waits. One owner's are read in index order (ix_evidence_value ends
    with owner and value); a slice in the upper half is read from the top of the index down (an OFFSET walks every
    entry before it: a p90 of 40,000 waits walked 36,000 from the bottom, 4,000 from the top)."""
    if owner is None:  # the partial index ix_evidence_wait: its condition must be in the statement as written
        where: tuple[Any, ...] = (
            EVIDENCE.c.mapping_id == mapping_id,
            EVIDENCE.c.kr_key == kr_key,
            EVIDENCE.c.part == literal_column("'pair'"),
        )
    else:
        where = (*_pairs(mapping_id, kr_key), EVIDENCE.c.owner_id == owner if owner else EVIDENCE.c.owner_id.is_(None))
    query = select(EVIDENCE.c.value).where(*where, EVIDENCE.c.value.is_not(None))
    from_top = total - offset - count  # the slice's offset counted from the largest wait down
    if 0 <= from_top < offset:
        query = query.order_by(EVIDENCE.c.value.desc()).limit(count).offset(from_top)
        return [float(v) for (v,) in session.execute(query)][::-1]
    query = query.order_by(EVIDENCE.c.value).limit(count).offset(offset)
    return [float(v) for (v,) in session.execute(query)]


def latest_manual_value(session: Session, *, mapping_id: int, kr_key: str, as_of: datetime) -> ManualValue | None:
    return session.exec(
        sqlmodel.select(ManualValue)
        .where(ManualValue.mapping_id == mapping_id, ManualValue.kr_key == kr_key, ManualValue.entered_at <= as_of)
        .order_by(col(ManualValue.entered_at).desc(), col(ManualValue.id).desc())
    ).first()


def replace_contributions(session: Session, *, mapping_id: int, values: dict[str, dict[str, float]]) -> None:
    """The contributions per owner of the key results in ``values`` (key → owner → value), replaced: one DELETE and
    one INSERT for them all (a DELETE and an INSERT per key result were 32 of an incremental run's statements)."""
    if not values:
        return
    contribution = table(KeyResultContribution)
    for chunk in chunks(sorted(values)):
        session.execute(
            delete(contribution).where(contribution.c.mapping_id == mapping_id, contribution.c.kr_key.in_(list(chunk)))
        )
    rows = [
        {"mapping_id": mapping_id, "kr_key": kr_key, "owner_id": o, "value": v}
        for kr_key, by_owner in values.items()
        for o, v in by_owner.items()
    ]
    if rows:
        session.execute(insert(contribution), rows)


def stored_contributions(session: Session, *, mapping_id: int, kr_key: str) -> dict[str | None, float]:
    """A key result's stored contributions, owner ("" for none) → value."""
    contribution = table(KeyResultContribution)
    query = select(contribution.c.owner_id, contribution.c.value).where(
        contribution.c.mapping_id == mapping_id, contribution.c.kr_key == kr_key
    )
    return {owner: float(value) for owner, value in session.execute(query)}


def add_history(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Key-result history rows in one executemany INSERT: added to the session as objects, each was its own
    INSERT … RETURNING id (SQLite cannot return ids of a batch in order), 50 statements an incremental run."""
    if rows:
        session.execute(insert(table(KeyResultHistory)), list(rows))


def put_all(session: Session, rows: Sequence[ObjectiveValue | HygieneSummary]) -> None:
    """Store rows of one table for one mapping: a row already stored is updated in place (only the columns whose
    value differs are written), the others are added. One SELECT for them all: ``session.merge`` read and copied
    each row on its own, 1 ms a row (a sixth of an incremental run at a million activities)."""
    if not rows:
        return
    model = type(rows[0])
    keys = [column.name for column in table(model).primary_key]
    stored = {
        tuple(getattr(row, k) for k in keys): row
        for row in session.exec(sqlmodel.select(model).where(col(model.mapping_id) == rows[0].mapping_id))
    }
    for row in rows:
        put_value(session, stored.get(tuple(getattr(row, k) for k in keys)), row)


def put_value(session: Session, stored: sqlmodel.SQLModel | None, row: sqlmodel.SQLModel) -> None:
    """Store one row: ``stored`` (the same row as read earlier in the run) updated in place, only the columns
    whose value differs written, or ``row`` added. ``session.merge`` copied every attribute through the ORM: 1 ms
    per key result, a fifth of an incremental run at a million activities."""
    if stored is None:
        session.add(row)
        return
    for name in type(row).model_fields:
        setattr(stored, name, getattr(row, name))


def delete_findings(
    session: Session,
    *,
    mapping_id: int,
    opportunity_ids: Sequence[str] | None = None,
    rule_keys: Sequence[str] | None = None,
) -> None:
    """The mapping's findings; of some opportunities only, and of some rules only (``rule_keys``)."""
    by_rule = [FINDING.c.rule_key.in_(list(rule_keys))] if rule_keys is not None else []
    if opportunity_ids is None:
        session.execute(delete(FINDING).where(FINDING.c.mapping_id == mapping_id, *by_rule))
        return
    for chunk in chunks(opportunity_ids):
        session.execute(
            delete(FINDING).where(
                FINDING.c.mapping_id == mapping_id, FINDING.c.opportunity_id.in_(list(chunk)), *by_rule
            )
        )


def findings_of(session: Session, *, mapping_id: int, opportunity_ids: Sequence[str]) -> list[tuple[str, str, str]]:
    """(opportunity, owner ("" for none), rule) of the findings on these opportunities."""
    found: list[tuple[str, str, str]] = []
    for chunk in chunks(opportunity_ids):
        rows = session.execute(
            select(FINDING.c.opportunity_id, FINDING.c.owner_id, FINDING.c.rule_key).where(
                FINDING.c.mapping_id == mapping_id, FINDING.c.opportunity_id.in_(list(chunk))
            )
        )
        found += [(opportunity, owner or "", rule) for opportunity, owner, rule in rows]
    return found


def _rule_clauses(mapping_id: int, rule_key: str, stages: Sequence[str] | None) -> list[ColumnElement[bool]]:
    """One rule's findings; with ``stages``, only those whose ``detail_text`` (a stuck-in-stage finding's stage)
    is one of them, stage "" also matching a finding without one."""
    clauses = [FINDING.c.mapping_id == mapping_id, FINDING.c.rule_key == rule_key]
    if stages is not None:
        named = FINDING.c.detail_text.in_(list(stages))
        clauses.append(or_(named, FINDING.c.detail_text.is_(None)) if "" in stages else named)
    return clauses


def rule_opportunities(
    session: Session, *, mapping_id: int, rule_key: str, stages: Sequence[str] | None = None
) -> set[str]:
    """The opportunities with a finding of one rule (in ``stages``: ``_rule_clauses``)."""
    query = select(FINDING.c.opportunity_id).where(*_rule_clauses(mapping_id, rule_key, stages))
    return {row[0] for row in session.execute(query)}


def violating(session: Session, query: Select[Any]) -> set[str]:
    """The opportunities a violations query (``hygiene.violations``) selects, without storing them."""
    sq = query.subquery("violation")
    return {row[0] for row in session.execute(select(sq.c.opportunity_id))}


def insert_findings(session: Session, *, mapping_id: int, query: Select[Any]) -> None:
    sq = query.subquery("violation")
    columns = [
        "mapping_id",
        "opportunity_id",
        "owner_id",
        "rule_key",
        "detail_number",
        "detail_date",
        "detail_at",
        "detail_text",
    ]
    source = select(
        literal(mapping_id),
        sq.c.opportunity_id,
        sq.c.owner_id,
        sq.c.rule_key,
        sq.c.detail_number,
        sq.c.detail_date,
        sq.c.detail_at,
        sq.c.detail_text,
    )
    session.execute(insert(FINDING).from_select(columns, source))


def count(session: Session, query: Select[Any]) -> int:
    return int(session.execute(select(func.count()).select_from(query.subquery())).scalar() or 0)


def findings_per_rule(session: Session, *, mapping_id: int) -> dict[str, int]:
    rows = session.execute(
        select(FINDING.c.rule_key, func.count()).where(FINDING.c.mapping_id == mapping_id).group_by(FINDING.c.rule_key)
    ).all()
    return {rule: int(n) for rule, n in rows}


def opportunities_with_findings(session: Session, *, mapping_id: int, rule_keys: Sequence[str]) -> dict[str, int]:
    """Owner id → open opportunities with at least one finding among ``rule_keys``."""
    rows = session.execute(
        select(FINDING.c.owner_id, func.count(func.distinct(FINDING.c.opportunity_id)))
        .where(FINDING.c.mapping_id == mapping_id, FINDING.c.rule_key.in_(list(rule_keys)))
        .group_by(FINDING.c.owner_id)
    ).all()
    return {owner or "": int(n) for owner, n in rows}


def stored_violations(session: Session, *, mapping_id: int) -> dict[str, int]:
    """Rule key → findings, as the last run's hygiene summaries hold them (without the team's "*")."""
    rows = session.execute(
        select(SUMMARY.c.rule_key, SUMMARY.c.violations).where(
            SUMMARY.c.mapping_id == mapping_id, SUMMARY.c.rule_key != "*"
        )
    )
    return {rule: int(n) for rule, n in rows}


def stored_summary(session: Session, *, mapping_id: int, rule_key: str) -> HygieneSummary | None:
    return session.get(HygieneSummary, (mapping_id, rule_key))


def last_computed_as_of(session: Session, *, mapping_id: int) -> datetime | None:
    """The moment the mapping was last computed as of (None: never). A recomputation triggered from a page whose
    clock is behind it (a test of a past cycle) uses the later of the two."""
    computation = table(Computation)
    return session.execute(select(func.max(computation.c.as_of)).where(computation.c.mapping_id == mapping_id)).scalar()


def latest_assessments(session: Session, *, mapping_id: int, as_of: datetime) -> dict[tuple[str, str], KamAssessment]:
    rows = session.exec(
        sqlmodel.select(KamAssessment)
        .where(KamAssessment.mapping_id == mapping_id, KamAssessment.assessed_at <= as_of)
        .order_by(col(KamAssessment.assessed_at), col(KamAssessment.id))
    ).all()
    return {(row.account_id, row.criterion_key): row for row in rows}


def replace_kam(
    session: Session,
    *,
    mapping_id: int,
    criteria: list[dict[str, Any]],
    scores: list[dict[str, Any]],
    accounts: Sequence[str] | None = None,
) -> None:
    """Replace the mapping's KAM results: all of them, or (``accounts``) those of some accounts only."""
    for model, rows in ((KamCriterionResult, criteria), (KamAccountScore, scores)):
        kam_table = table(model)
        where = [kam_table.c.mapping_id == mapping_id]
        if accounts is not None:
            where.append(kam_table.c.account_id.in_(list(accounts)))
        session.execute(delete(kam_table).where(*where))
        if rows:
            session.execute(insert(kam_table), rows)


def kam_scores(session: Session, *, mapping_id: int) -> dict[str, tuple[str | None, float | None]]:
    """Account id → (owner, score) of the stored key accounts (plain rows: 2,000 ORM objects took 0.3 s)."""
    scores = table(KamAccountScore)
    query = select(scores.c.account_id, scores.c.owner_id, scores.c.score).where(scores.c.mapping_id == mapping_id)
    return {account: (owner, score) for account, owner, score in session.execute(query)}


def has_kam_scores(session: Session, *, mapping_id: int) -> bool:
    scores = table(KamAccountScore)
    return (
        session.execute(select(scores.c.account_id).where(scores.c.mapping_id == mapping_id).limit(1)).first()
        is not None
    )


def rows(session: Session, query: Select[Any], params: dict[str, Any] | None = None) -> list[Any]:
    return list(session.execute(query, params).all())


def delete_results_not_in(session: Session, *, mapping_id: int, kr_keys: Sequence[str]) -> None:
    """Key results no longer in the mapping lose their current value (their history stays)."""
    for model in (KeyResultValue, KeyResultContribution, KeyResultEvidence, KeyResultPartTotal):
        result = table(model)
        session.execute(delete(result).where(result.c.mapping_id == mapping_id, result.c.kr_key.not_in(list(kr_keys))))


def open_sync_start(session: Session, *, connection_id: int, at: datetime) -> datetime | None:
    """The start of the earliest sync run of the connection that was running at ``at``: started before it and not
    finished by then (a run whose process died has no end until the connection's next run closes it), or None."""
    run = table(SyncRun)
    query = select(func.min(run.c.started_at)).where(
        run.c.connection_id == connection_id,
        run.c.started_at < at,
        or_(run.c.finished_at.is_(None), run.c.finished_at > at),
    )
    return session.execute(query).scalar()


def changed_since(session: Session, *, connection_id: int, since: datetime) -> dict[str, set[str]]:
    """Ids of the records a sync wrote after ``since``, by kind (opportunity_contact: their opportunities).

    A sync rewrites some unchanged records too (Salesforce's look-back window); that only widens the recompute.
    """
    out: dict[str, set[str]] = {}
    for kind, model in (
        ("activity", Activity),
        ("opportunity", Opportunity),
        ("account", Account),
        ("contact", Contact),
        ("opportunity_contact", OpportunityContact),
        ("lead", Lead),
    ):
        t = table(model)
        column = t.c.opportunity_id if kind == "opportunity_contact" else t.c.external_id
        rows = session.execute(select(column).where(t.c.connection_id == connection_id, t.c.synced_at > since)).all()
        out[kind] = {row[0] for row in rows}
    return out
