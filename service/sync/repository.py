"""All SQL of the sync domain. Functions take a Session and never commit: the sync job commits once per page."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlmodel
from sqlalchemy import Index, Table, bindparam, delete, literal, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col

from connectors import records as crm
from service.crm.models import (
    Account,
    Activity,
    ActivityContact,
    ActivityOpportunity,
    Contact,
    CrmConnection,
    Lead,
    Opportunity,
    OpportunityContact,
    Owner,
    RecordAccount,
)
from service.kit.db import insert_rows, upsert, utcnow
from service.sync.models import SyncRun, SyncSkip, SyncState

TABLES: dict[str, type[SQLModel]] = {
    "owner": Owner,
    "account": Account,
    "contact": Contact,
    "opportunity": Opportunity,
    "opportunity_contact": OpportunityContact,
    "activity": Activity,
    "lead": Lead,
}

# Records a connector derives from another record's row, under the same id (a HubSpot lead is a contact that became a
# lead): they go when that record goes (deleted, archived or merged away).
DERIVED: dict[str, tuple[str, ...]] = {"contact": ("lead",)}

# The tables a sync fills: records and their links.
LOADED_TABLES: tuple[type[SQLModel], ...] = (*TABLES.values(), ActivityContact, ActivityOpportunity, RecordAccount)


def defer_indexes(engine: Engine) -> list[Index]:
    """On SQLite, the secondary indexes of the sync's tables that are empty now, dropped: a first sync then writes
    rows without keeping these B-trees up to date and builds them once at the end (``restore_indexes``), which takes
    a third of the time (101,479 activities: 5.7-6.1 s loading with the indexes against 1.7-2.0 s plus 0.7 s to build
    them after). Only while no activity is stored at all (a first sync; of any connection), and only for tables
    holding no row. Unique indexes stay: the upserts and the sync's own look-ups use them. Nothing is deferred on
    PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return []
    dropped: list[Index] = []
    with engine.begin() as conn:

        def empty(table: Table) -> bool:
            return conn.execute(select(literal(1)).select_from(table).limit(1)).first() is None

        if not empty(Activity.__table__):  # type: ignore[attr-defined]
            return []  # not a first sync (tables a CRM never fills stay empty: not worth dropping their indexes)
        for model in LOADED_TABLES:
            table: Table = model.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
            secondary = [index for index in table.indexes if not index.unique]
            if secondary and empty(table):
                for index in secondary:
                    index.drop(conn, checkfirst=True)
                dropped += secondary
    return dropped


def restore_indexes(engine: Engine) -> None:
    """Every secondary index of the sync's tables exists afterwards: the ones ``defer_indexes`` dropped, and any a
    killed first sync left dropped (each sync starts by calling this; an existing index costs one look-up)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        for model in LOADED_TABLES:
            for index in model.__table__.indexes:  # type: ignore[attr-defined]
                if not index.unique:
                    index.create(conn, checkfirst=True)


# Chunk size for IN (...) lists: well under SQLite's and PostgreSQL's parameter limits.
ID_CHUNK = 1000


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), ID_CHUNK):
        yield items[start : start + ID_CHUNK]


def get_or_create_connection(session: Session, *, crm_name: str, name: str) -> CrmConnection:
    connection = session.exec(
        sqlmodel.select(CrmConnection).where(CrmConnection.crm == crm_name, CrmConnection.name == name)
    ).first()
    if connection is None:
        connection = CrmConnection(crm=crm_name, name=name, created_at=utcnow())
        session.add(connection)
        session.flush()
    return connection


def set_instance_url(connection: CrmConnection, instance_url: str | None) -> None:
    """The connection's base URL for record links; an unknown one (None) keeps what is stored."""
    if instance_url and connection.instance_url != instance_url:
        connection.instance_url = instance_url


def get_state(session: Session, *, connection_id: int, stream: str) -> SyncState:
    state = session.get(SyncState, (connection_id, stream))
    if state is None:
        state = SyncState(connection_id=connection_id, stream=stream)
        session.add(state)
        session.flush()
    return state


def stored_stamps(session: Session, table: type[SQLModel], *, connection_id: int, ids: Sequence[str]) -> dict:
    """external_id → (modified_at, is_deleted) of the rows already stored among ``ids``."""
    cols: Any = table
    found: dict[str, tuple[datetime, bool]] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(cols.external_id, cols.modified_at, cols.is_deleted).where(
                cols.connection_id == connection_id, cols.external_id.in_(chunk)
            )
        )
        found.update({r[0]: (r[1], r[2]) for r in rows})
    return found


# A canonical record's fields that are no columns of its table: its kind, and the link lists (tables of their own).
# Its other fields are the row's values as they are: the records are flat, frozen pydantic models, so their
# ``__dict__`` holds what ``model_dump`` would copy (a 100,000-activity first sync spent 0.65 s in model_dump).
_NOT_COLUMNS = frozenset({"kind", "contact_ids", "account_ids", "opportunity_ids", "merged_ids"})


def row_values(record: crm.CanonicalRecord) -> dict[str, Any]:
    """The record's own column values (``model_dump`` without ``_NOT_COLUMNS``, without its copying)."""
    return {k: v for k, v in record.__dict__.items() if k not in _NOT_COLUMNS}


def upsert_records(
    session: Session,
    records: Sequence[crm.CanonicalRecord],
    *,
    connection_id: int,
    crm_object: str,
    seen_at: datetime | None,
    stored_ids: Collection[str] = (),
    detach: bool = False,
) -> None:
    """Insert or update canonical records (all of one kind). Older CRM versions never replace newer rows.

    ``stored_ids``: which of them are already in the table (their link sets are replaced: activity↔contact,
    record↔account, HubSpot deal↔contact). ``detach``: records marked deleted stop counting everywhere
    (``detach_deleted``)."""
    if not records:
        return
    table: Any = TABLES[records[0].kind]
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for record in records:
        values = row_values(record)
        values.update(
            connection_id=connection_id,
            crm_object=crm_object,
            synced_at=now,
            seen_at=seen_at,
            deleted_at=record.modified_at if record.is_deleted else None,
        )
        rows.append(values)
    upsert(session, table.__table__, rows, keys=("connection_id", "external_id"), newer_than="modified_at")
    _replace_links(session, records, connection_id=connection_id, stored_ids=stored_ids)
    if detach:
        deleted = [r.external_id for r in records if r.is_deleted]
        detach_deleted(session, records[0].kind, connection_id=connection_id, ids=deleted)


# What a CRM changes without a new change stamp (HubSpot: associations, an owner's deactivation).
UNSTAMPED_COLUMNS: dict[str, tuple[str, ...]] = {
    "owner": ("is_active",),
    "contact": ("account_id",),
    "opportunity": ("account_id",),
    # an e-mail task's direction is its EmailMessage's (Salesforce Enhanced Email), which changes without the task
    "activity": ("account_id", "opportunity_id", "direction", "email_from", "email_to"),
}


def refresh_unstamped(session: Session, records: Sequence[crm.CanonicalRecord], *, connection_id: int) -> None:
    """Records read again at the version already stored (all of one kind): their links and ``UNSTAMPED_COLUMNS``
    are brought up to date. A webhook's targeted refresh or the look-back re-read thus sees an association removed
    without a new ``hs_lastmodifieddate``; what did not change costs no write."""
    if not records:
        return
    columns = UNSTAMPED_COLUMNS.get(records[0].kind, ())
    if columns:
        core: Any = TABLES[records[0].kind].__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
        session.execute(
            update(core)
            .where(
                core.c.connection_id == connection_id,
                core.c.external_id == bindparam("b_id"),
                or_(*(core.c[name].is_distinct_from(bindparam(f"b_{name}")) for name in columns)),
            )
            # synced_at: what changed here is a change of this sync for the incremental compute (changed_since)
            .values({**{name: bindparam(f"b_{name}") for name in columns}, "synced_at": utcnow()}),
            [{"b_id": r.external_id, **{f"b_{name}": getattr(r, name) for name in columns}} for r in records],
        )
    _replace_links(session, records, connection_id=connection_id, stored_ids={r.external_id for r in records})


def _replace_links(
    session: Session, records: Sequence[crm.CanonicalRecord], *, connection_id: int, stored_ids: Collection[str]
) -> None:
    """Make the link sets of these records (all of one kind) exactly what the CRM just returned."""
    kind = records[0].kind
    if kind == "activity":
        activities: Sequence[crm.Activity] = records  # type: ignore[assignment]  # one kind: all are activities
        _replace_link_rows(
            session,
            ActivityContact,
            connection_id=connection_id,
            keys=("activity_id", "contact_id"),
            parents=[a.external_id for a in activities],
            stored_ids=stored_ids,
            wanted={(a.external_id, c): {} for a in activities for c in a.contact_ids},
        )
        several = [a for a in activities if a.opportunity_ids is not None]
        if several:
            _replace_link_rows(
                session,
                ActivityOpportunity,
                connection_id=connection_id,
                keys=("activity_id", "opportunity_id"),
                parents=[a.external_id for a in several],
                stored_ids=stored_ids,
                wanted={(a.external_id, o): {} for a in several for o in a.opportunity_ids or ()},
            )
    if kind in ("contact", "opportunity", "activity"):
        linked = [r for r in records if getattr(r, "account_ids", None) is not None]
        if linked:
            _replace_link_rows(
                session,
                RecordAccount,
                connection_id=connection_id,
                keys=("record_id", "account_id"),
                parents=[r.external_id for r in linked],
                stored_ids=stored_ids,
                wanted={
                    (r.external_id, account): {"is_primary": account == getattr(r, "account_id", None)}
                    for r in linked
                    for account in getattr(r, "account_ids", ())
                },
                fixed={"record_kind": kind},
            )
    if kind == "opportunity":
        # one kind: every record is a crm.Opportunity, which mypy cannot narrow the Sequence to
        _replace_opportunity_contacts(session, records, connection_id=connection_id, stored_ids=stored_ids)  # type: ignore[arg-type]


def _replace_link_rows(
    session: Session,
    table: type[SQLModel],
    *,
    connection_id: int,
    keys: tuple[str, str],
    parents: Sequence[str],
    stored_ids: Collection[str],
    wanted: dict[tuple[str, str], dict[str, Any]],
    fixed: dict[str, Any] | None = None,
) -> None:
    """The rows of a link table (keyed by ``keys``: parent id, linked id) for ``parents`` become ``wanted`` (key →
    other columns): stored rows are read first, so only links that changed are written; parents that are not stored
    yet have no rows, which keeps a first sync insert-only."""
    core: Any = table.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    fixed = fixed or {}
    scope = [core.c.connection_id == connection_id, *(core.c[name] == value for name, value in fixed.items())]
    values = sorted({name for extra in wanted.values() for name in extra})
    have: dict[tuple[str, str], dict[str, Any]] = {}
    for chunk in _chunks([p for p in dict.fromkeys(parents) if p in stored_ids]):
        rows = session.execute(
            select(core.c[keys[0]], core.c[keys[1]], *(core.c[name] for name in values)).where(
                *scope, core.c[keys[0]].in_(chunk)
            )
        )
        have.update({(row[0], row[1]): dict(zip(values, row[2:], strict=True)) for row in rows})
    by_key = [core.c[name] == bindparam(f"b_{name}") for name in keys]
    gone = [dict(zip(("b_" + keys[0], "b_" + keys[1]), key, strict=True)) for key in have if key not in wanted]
    if gone:
        session.execute(delete(core).where(*scope, *by_key), gone)
    new = [key for key in wanted if key not in have]
    if new:
        base = {"connection_id": connection_id, **fixed}
        insert_rows(session, core, [{**base, keys[0]: key[0], keys[1]: key[1], **wanted[key]} for key in sorted(new)])
    changed = [key for key in wanted if key in have and have[key] != wanted[key]]
    if changed:
        session.execute(
            update(core).where(*scope, *by_key).values({name: bindparam(f"v_{name}") for name in values}),
            [
                {"b_" + keys[0]: key[0], "b_" + keys[1]: key[1], **{f"v_{n}": wanted[key][n] for n in values}}
                for key in changed
            ],
        )


def _replace_opportunity_contacts(
    session: Session, opportunities: Sequence[crm.Opportunity], *, connection_id: int, stored_ids: Collection[str]
) -> None:
    """An opportunity that carries its whole set of contacts (HubSpot): its opportunity_contact rows of contacts no
    longer in the set are marked deleted, rows of contacts in it live again (the rows themselves come as
    OpportunityContact records)."""
    sets = {
        o.external_id: set(o.contact_ids)
        for o in opportunities
        if o.contact_ids is not None and o.external_id in stored_ids
    }
    core: Any = OpportunityContact.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    gone: list[str] = []
    back: list[str] = []
    for chunk in _chunks(list(sets)):
        rows = session.execute(
            select(core.c.external_id, core.c.opportunity_id, core.c.contact_id, core.c.is_deleted).where(
                core.c.connection_id == connection_id, core.c.opportunity_id.in_(chunk)
            )
        )
        for external_id, opportunity_id, contact_id, is_deleted in rows:
            linked = contact_id in sets[opportunity_id]
            if linked and is_deleted:
                back.append(external_id)
            elif not linked and not is_deleted:
                gone.append(external_id)
    for ids, values in (
        (gone, {"is_deleted": True, "deleted_at": utcnow()}),
        (back, {"is_deleted": False, "deleted_at": None}),
    ):
        for chunk in _chunks(ids):
            session.execute(
                update(core).where(core.c.connection_id == connection_id, core.c.external_id.in_(chunk)).values(values)
            )


# record kind → (field, kind of the record it names)
_REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "contact": (("account_id", "account"), ("account_ids", "account")),
    "opportunity": (("account_id", "account"), ("account_ids", "account"), ("contact_ids", "contact")),
    "activity": (
        ("account_id", "account"),
        ("account_ids", "account"),
        ("opportunity_id", "opportunity"),
        ("opportunity_ids", "opportunity"),
        ("contact_ids", "contact"),
    ),
    "opportunity_contact": (("opportunity_id", "opportunity"), ("contact_id", "contact")),
    "lead": (("account_id", "account"),),
}


def without_deleted_references(
    session: Session, records: Sequence[crm.CanonicalRecord], *, connection_id: int
) -> list[crm.CanonicalRecord]:
    """The records with their references to records stored as deleted taken out (an opportunity↔contact link to a
    deleted contact or opportunity comes marked deleted). HubSpot may still return associations of archived
    records; a link must not bring a deleted record back into the numbers."""
    named: dict[str, set[str]] = {}
    for record in records:
        for field, target in _REFERENCES.get(record.kind, ()):
            value = getattr(record, field)
            if value is not None:
                named.setdefault(target, set()).update(value if isinstance(value, tuple) else (value,))
    # a record this very page brings back live (restored in the CRM) is not deleted for its own links
    live_here = {(record.kind, record.external_id) for record in records if not record.is_deleted}
    deleted: dict[str, set[str]] = {}
    for target, ids in named.items():
        table: Any = TABLES[target]
        for chunk in _chunks(sorted(ids)):
            found = session.execute(
                select(table.external_id).where(
                    table.connection_id == connection_id, table.is_deleted.is_(True), table.external_id.in_(chunk)
                )
            )
            deleted.setdefault(target, set()).update(row[0] for row in found if (target, row[0]) not in live_here)
    if not any(deleted.values()):
        return list(records)
    kept: list[crm.CanonicalRecord] = []
    for record in records:
        changes: dict[str, Any] = {}
        for field, target in _REFERENCES.get(record.kind, ()):
            value, gone = getattr(record, field), deleted.get(target)
            if value is None or not gone:
                continue
            if isinstance(value, tuple):
                if any(v in gone for v in value):
                    changes[field] = tuple(v for v in value if v not in gone)
            elif value in gone:
                if record.kind == "opportunity_contact":
                    changes["is_deleted"] = True
                    continue
                # the record names the next of its live links instead (HubSpot: the lowest id), as a full read would
                others = [v for v in getattr(record, f"{field}s", None) or () if v not in gone]
                changes[field] = others[0] if others else None
        kept.append(record.model_copy(update=changes) if changes else record)
    return kept


def detach_deleted(session: Session, kind: str, *, connection_id: int, ids: Sequence[str]) -> None:
    """Records just marked deleted stop counting everywhere, in the same transaction: references to a deleted
    account or opportunity (``account_id``, ``opportunity_id``) become NULL, activity↔contact links to a deleted
    contact are removed, opportunity↔contact links of a deleted opportunity or contact are marked deleted (as a
    removed link is), and record↔account links of or to the deleted record are removed."""
    if kind not in ("account", "opportunity", "contact", "activity"):
        return
    now = utcnow()
    for chunk in _chunks(list(dict.fromkeys(ids))):
        if kind == "account":
            for table in ("activity", "opportunity", "contact"):
                _repoint(session, table, "account_id", connection_id=connection_id, gone=chunk, links=RecordAccount,
                         link_keys=("record_id", "account_id"), scope={"record_kind": table})  # fmt: skip
            session.execute(
                delete(RecordAccount).where(
                    col(RecordAccount.connection_id) == connection_id,
                    col(RecordAccount.account_id).in_(chunk),
                )
            )
            continue
        links: Any = OpportunityContact.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
        if kind == "opportunity":
            _repoint(session, "activity", "opportunity_id", connection_id=connection_id, gone=chunk,
                     links=ActivityOpportunity, link_keys=("activity_id", "opportunity_id"))  # fmt: skip
            session.execute(
                delete(ActivityOpportunity).where(
                    col(ActivityOpportunity.connection_id) == connection_id,
                    col(ActivityOpportunity.opportunity_id).in_(chunk),
                )
            )
        if kind == "activity":
            session.execute(
                delete(ActivityOpportunity).where(
                    col(ActivityOpportunity.connection_id) == connection_id,
                    col(ActivityOpportunity.activity_id).in_(chunk),
                )
            )
        if kind == "contact":
            session.execute(
                delete(ActivityContact).where(
                    col(ActivityContact.connection_id) == connection_id,
                    col(ActivityContact.contact_id).in_(chunk),
                )
            )
        if kind in ("opportunity", "contact"):
            session.execute(
                update(links)
                .where(
                    links.c.connection_id == connection_id,
                    links.c[f"{kind}_id"].in_(chunk),
                    links.c.is_deleted.is_(False),
                )
                .values(is_deleted=True, deleted_at=now)
            )
        session.execute(
            delete(RecordAccount).where(
                col(RecordAccount.connection_id) == connection_id,
                col(RecordAccount.record_kind) == kind,
                col(RecordAccount.record_id).in_(chunk),
            )
        )


def _repoint(
    session: Session,
    table: str,
    column: str,
    *,
    connection_id: int,
    gone: Sequence[str],
    links: type[SQLModel],
    link_keys: tuple[str, str],
    scope: dict[str, Any] | None = None,
) -> None:
    """Rows of ``table`` whose ``column`` names a record in ``gone`` name their next live link instead (the lowest id
    among their rows in the link table ``links``, keyed by ``link_keys``: record id, linked id), or NULL without
    one: what the CRM shows once the deleted record is no longer associated."""
    core: Any = TABLES[table].__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    link: Any = links.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    affected = [
        row[0]
        for row in session.execute(
            select(core.c.external_id).where(core.c.connection_id == connection_id, core.c[column].in_(gone))
        )
    ]
    if not affected:
        return
    others: dict[str, list[str]] = {}
    filters = [link.c.connection_id == connection_id, *(link.c[k] == v for k, v in (scope or {}).items())]
    for chunk in _chunks(affected):
        for record_id, linked in session.execute(
            select(link.c[link_keys[0]], link.c[link_keys[1]]).where(
                *filters, link.c[link_keys[0]].in_(chunk), link.c[link_keys[1]].not_in(gone)
            )
        ):
            others.setdefault(record_id, []).append(linked)
    session.execute(
        update(core)
        .where(core.c.connection_id == connection_id, core.c.external_id == bindparam("b_id"))
        .values({column: bindparam("b_new")}),
        [
            {"b_id": record_id, "b_new": min(others[record_id], key=lambda i: (len(i), i)) if record_id in others
             else None}
            for record_id in affected
        ],
    )  # fmt: skip


def retire_merged(session: Session, kind: str, *, connection_id: int, survivors: Sequence[crm.CanonicalRecord]) -> int:
    """Records the CRM merged into ``survivors`` (their ``merged_ids``) stop existing here too: stored ones are
    marked deleted, and whatever pointed at them points at the survivor, as it does in the CRM, which moves the
    associations of merged records to the result without re-stamping the associated records (so an incremental
    sync never reads those again). Returns how many stored live records were retired.

    Moved: ``account_id`` of activities, opportunities and contacts and record↔account links (accounts merged);
    activity↔contact links and opportunity↔contact links (contacts merged); ``opportunity_id`` of activities and
    activity↔opportunity links (opportunities merged). The merged records' own links go: the survivor was read with
    its own."""
    moves = {old: r.external_id for r in survivors for old in r.merged_ids if old != r.external_id}
    if not moves or kind not in ("account", "contact", "opportunity"):
        return 0
    table: Any = TABLES[kind]
    stored = stored_stamps(session, table, connection_id=connection_id, ids=sorted(moves))
    live = sorted(i for i, (_at, deleted) in stored.items() if not deleted)
    now = utcnow()
    for chunk in _chunks(live):
        session.execute(
            update(table.__table__)
            .where(table.__table__.c.connection_id == connection_id, table.__table__.c.external_id.in_(chunk))
            .values(is_deleted=True, deleted_at=now)
        )
    old_ids = sorted(moves)
    _retire_derived(session, kind, connection_id=connection_id, ids=old_ids, at=now)
    scalar = {"account": ("activity", "opportunity", "contact"), "opportunity": ("activity",)}.get(kind, ())
    column = f"{kind}_id"
    for target in scalar:
        core: Any = TABLES[target].__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
        session.execute(
            update(core)
            .where(core.c.connection_id == connection_id, core.c[column] == bindparam("b_old"))
            .values({column: bindparam("b_new")}),
            [{"b_old": old, "b_new": new} for old, new in moves.items()],
        )
    if kind == "account":
        _move_links(session, RecordAccount, connection_id=connection_id, moved="account_id", moves=moves,
                    others=("record_kind", "record_id"), merge_flag="is_primary")  # fmt: skip
    if kind == "contact":
        _move_links(session, ActivityContact, connection_id=connection_id, moved="contact_id", moves=moves,
                    others=("activity_id",))  # fmt: skip
        _move_opportunity_contacts(session, connection_id=connection_id, moves=moves, now=now)
    if kind == "opportunity":
        _move_links(session, ActivityOpportunity, connection_id=connection_id, moved="opportunity_id", moves=moves,
                    others=("activity_id",))  # fmt: skip
        links: Any = OpportunityContact.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
        for chunk in _chunks(old_ids):
            session.execute(
                update(links)
                .where(links.c.connection_id == connection_id, links.c.opportunity_id.in_(chunk),
                       links.c.is_deleted.is_(False))
                .values(is_deleted=True, deleted_at=now)
            )  # fmt: skip
    if kind in ("contact", "opportunity"):
        for chunk in _chunks(old_ids):
            session.execute(
                delete(RecordAccount).where(
                    col(RecordAccount.connection_id) == connection_id,
                    col(RecordAccount.record_kind) == kind,
                    col(RecordAccount.record_id).in_(chunk),
                )
            )
    return len(live)


def _move_links(
    session: Session,
    table: type[SQLModel],
    *,
    connection_id: int,
    moved: str,
    moves: dict[str, str],
    others: tuple[str, ...],
    merge_flag: str | None = None,
) -> None:
    """Rows of a link table whose ``moved`` column names an old id name the new one; where the row already exists
    for the new id (both merged records were linked), the old row goes (``merge_flag``: the kept row's flag is the
    OR of both)."""
    core: Any = table.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    flag = [core.c[merge_flag]] if merge_flag else []
    rows: list[Any] = []
    for chunk in _chunks(sorted(moves)):
        rows += list(
            session.execute(
                select(*(core.c[o] for o in others), core.c[moved], *flag).where(
                    core.c.connection_id == connection_id, core.c[moved].in_(chunk)
                )
            )
        )
    if not rows:
        return
    targets = {moves[row[len(others)]] for row in rows}
    existing: dict[tuple[Any, ...], Any] = {}
    for chunk in _chunks(sorted(targets)):
        for there in session.execute(
            select(*(core.c[o] for o in others), core.c[moved], *flag).where(
                core.c.connection_id == connection_id, core.c[moved].in_(chunk)
            )
        ):
            existing[tuple(there[: len(others) + 1])] = there[len(others) + 1] if merge_flag else None
    key = [core.c[o] == bindparam(f"b_{o}") for o in others]
    for found in rows:
        row = tuple(found)
        parent, old = tuple(row[: len(others)]), row[len(others)]
        new_key = (*parent, moves[old])
        scope = {f"b_{o}": v for o, v in zip(others, parent, strict=True)}
        where = [core.c.connection_id == connection_id, *key, core.c[moved] == bindparam("b_old")]
        if new_key in existing:
            session.execute(delete(core).where(*where), [{**scope, "b_old": old}])
            if merge_flag and row[len(others) + 1] and not existing[new_key]:
                session.execute(
                    update(core).where(core.c.connection_id == connection_id, *key, core.c[moved] == bindparam("b_new"))
                    .values({merge_flag: True}),
                    [{**scope, "b_new": moves[old]}],
                )  # fmt: skip
                existing[new_key] = True
        else:
            session.execute(update(core).where(*where).values({moved: bindparam("b_new")}),
                            [{**scope, "b_old": old, "b_new": moves[old]}])  # fmt: skip
            existing[new_key] = row[len(others) + 1] if merge_flag else None


def _move_opportunity_contacts(session: Session, *, connection_id: int, moves: dict[str, str], now: datetime) -> None:
    """Live opportunity↔contact links to merged contacts: the link to the surviving contact is live (inserted, or
    brought back when a removed one is stored), the old one is marked deleted, as a removed link is."""
    core: Any = OpportunityContact.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    old_rows = []
    for chunk in _chunks(sorted(moves)):
        old_rows += list(
            session.execute(
                select(core).where(
                    core.c.connection_id == connection_id, core.c.contact_id.in_(chunk), core.c.is_deleted.is_(False)
                )
            ).mappings()
        )
    for row in old_rows:
        new_contact = moves[row["contact_id"]]
        found = session.execute(
            select(core.c.external_id, core.c.is_deleted).where(
                core.c.connection_id == connection_id,
                core.c.opportunity_id == row["opportunity_id"],
                core.c.contact_id == new_contact,
            )
        ).first()
        if found is None:
            external_id = f"{row['opportunity_id']}:{new_contact}"
            session.execute(
                core.insert().values({**row, "external_id": external_id, "contact_id": new_contact, "synced_at": now})
            )
        elif found[1]:
            session.execute(
                update(core)
                .where(core.c.connection_id == connection_id, core.c.external_id == found[0])
                .values(is_deleted=False, deleted_at=None)
            )
        session.execute(
            update(core)
            .where(core.c.connection_id == connection_id, core.c.external_id == row["external_id"])
            .values(is_deleted=True, deleted_at=now)
        )


def mark_seen(session: Session, kind: str, *, connection_id: int, ids: Sequence[str], seen_at: datetime) -> None:
    table: Any = TABLES[kind]
    for chunk in _chunks(ids):
        session.execute(
            update(table)
            .where(table.connection_id == connection_id, table.external_id.in_(chunk))
            .values(seen_at=seen_at)
        )


def stored_objects(session: Session, *, connection_id: int) -> set[tuple[str, str]]:
    """(kind, CRM object) of the rows the connection has stored, deleted ones included."""
    pairs: set[tuple[str, str]] = set()
    for kind, table in TABLES.items():
        model: Any = table
        found = session.execute(select(model.crm_object).where(model.connection_id == connection_id).distinct())
        pairs.update((kind, row[0]) for row in found)
    return pairs


def sweep_unseen(
    session: Session, kind: str, *, connection_id: int, crm_object: str, full_started_at: datetime, detach: bool = False
) -> int:
    """After a full sync of one CRM object: its rows the CRM no longer lists are marked deleted (kept); ``detach``:
    and stop counting everywhere (``detach_deleted``)."""
    table: Any = TABLES[kind]
    unseen = session.execute(
        select(table.external_id).where(
            table.connection_id == connection_id,
            table.crm_object == crm_object,
            table.is_deleted.is_(False),
            or_(table.seen_at.is_(None), table.seen_at < full_started_at),
        )
    )
    ids = [row[0] for row in unseen]
    now = utcnow()
    for chunk in _chunks(ids):
        session.execute(
            update(table)
            .where(table.connection_id == connection_id, table.external_id.in_(chunk))
            .values(is_deleted=True, deleted_at=now)
        )
    if detach:
        detach_deleted(session, kind, connection_id=connection_id, ids=ids)
    return len(ids)


def mark_deleted(
    session: Session, kind: str, *, connection_id: int, deletions: Sequence[crm.Deletion], detach: bool = False
) -> int:
    """Mark the listed records deleted (rows are kept); returns how many were live before. A deletion older than
    the stored version is history, not news: the record was restored (undeleted) and changed after it. ``detach``:
    the records also stop counting everywhere (``detach_deleted``)."""
    table: Any = TABLES[kind]
    stored = stored_stamps(session, table, connection_id=connection_id, ids=[d.external_id for d in deletions])
    live = [
        d
        for d in deletions
        if d.external_id in stored
        and not stored[d.external_id][1]
        and (d.deleted_at is None or d.deleted_at >= stored[d.external_id][0])
    ]
    if live:
        core = table.__table__  # Core table: executemany UPDATE with per-row parameters
        session.execute(
            update(core)
            .where(core.c.connection_id == connection_id, core.c.external_id == bindparam("b_id"))
            .values(is_deleted=True, deleted_at=bindparam("b_at")),
            [{"b_id": d.external_id, "b_at": d.deleted_at or utcnow()} for d in live],
        )
        if detach:
            detach_deleted(session, kind, connection_id=connection_id, ids=[d.external_id for d in live])
        _retire_derived(session, kind, connection_id=connection_id, ids=[d.external_id for d in live], at=utcnow())
    return len(live)


def _retire_derived(session: Session, kind: str, *, connection_id: int, ids: Sequence[str], at: datetime) -> None:
    """The records derived from these (``DERIVED``) are marked deleted with them."""
    for derived in DERIVED.get(kind, ()):
        table: Any = TABLES[derived]
        for chunk in _chunks(list(ids)):
            session.execute(
                update(table)
                .where(table.connection_id == connection_id, table.external_id.in_(chunk), table.is_deleted.is_(False))
                .values(is_deleted=True, deleted_at=at)
            )


def record_skips(
    session: Session,
    skipped: Sequence[crm.SkippedRecord],
    *,
    connection_id: int,
    stream: str,
    run_id: int | None,
) -> None:
    rows = [
        {
            "connection_id": connection_id,
            "stream": stream,
            "external_id": item.external_id or "<no id>",
            "reason": item.reason,
            "raw": item.raw,
            "run_id": run_id,
            "skipped_at": utcnow(),
        }
        for item in skipped
    ]
    # SQLModel does not type __table__
    upsert(session, SyncSkip.__table__, rows, keys=("connection_id", "stream", "external_id"))  # type: ignore[attr-defined]


def start_run(session: Session, *, connection_id: int, full: bool) -> SyncRun:
    run = SyncRun(connection_id=connection_id, full=full, started_at=utcnow())
    session.add(run)
    session.flush()
    return run
