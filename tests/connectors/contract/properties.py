"""The properties every CRM connector must have, one small class each.

These classes are templates (their names do not start with ``Test``, so pytest does not collect them here):
``factory.contract_suite`` subclasses each one per CRM and binds the CRM's driver (``drivers.py``). Their tests ask
for ``crm`` (the CRM started by the driver, see ``conftest.py``) and, where they sync, ``engine`` (SQLite and
PostgreSQL, ``tests/conftest.py``). A test never asks which CRM it holds: what differs is in the driver.
"""

from __future__ import annotations

import json
import typing
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from connectors.records import CanonicalRecord
from service.crm.models import CrmConnection
from service.sync.repository import TABLES
from service.sync.service import run_sync
from tests.connectors.contract.drivers import CrmDriver, LiveCrm

# An incremental read from before anything in the small orgs: every record again, through the CRM's other read path
# (Salesforce: SOQL with a SystemModstamp filter; HubSpot: the search API instead of the list API).
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

MODELS: dict[str, type[CanonicalRecord]] = {
    model.model_fields["kind"].default: model for model in typing.get_args(CanonicalRecord)
}

LocalCopy = dict[str, dict[str, tuple[datetime, bool]]]  # kind → external_id → (modified_at, is_deleted)


def read(connector: Any, *, since: datetime | None) -> Iterator[tuple[str, Any]]:
    """(stream, page) of every page of every stream of ``connector``."""
    for stream in connector.streams:
        for page in connector.pages(stream, since=since):
            yield stream, page


def local_copy(engine: Engine, crm: LiveCrm, connection_name: str) -> LocalCopy:
    """What a sync stored for one connection: per table, each row's change stamp and whether it is deleted."""
    copy: LocalCopy = {}
    with Session(engine) as session:
        connection_id = _connection_id(session, crm, connection_name)
        for kind, model in TABLES.items():
            table: Any = model
            rows = session.execute(
                select(table.external_id, table.modified_at, table.is_deleted).where(
                    table.connection_id == connection_id
                )
            )
            copy[kind] = {external_id: (modified_at, is_deleted) for external_id, modified_at, is_deleted in rows}
    return copy


def _connection_id(session: Session, crm: LiveCrm, connection_name: str) -> int:
    found = session.execute(
        select(col(CrmConnection.id)).where(
            col(CrmConnection.crm) == crm.connector().crm, col(CrmConnection.name) == connection_name
        )
    ).scalar_one()
    assert found is not None
    return found


def differences(copy: LocalCopy, expected: LocalCopy) -> str:
    """Per table, the ids missing from ``copy``, extra in it, and stored differently (stamp or deleted flag)."""
    lines = []
    for kind in sorted(expected.keys() | copy.keys()):
        got, want = copy.get(kind, {}), expected.get(kind, {})
        missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
        differ = sorted(i for i in want.keys() & got.keys() if want[i] != got[i])
        if missing or extra or differ:
            lines.append(f"{kind}: missing {missing[:5]} ({len(missing)}), extra {extra[:5]} ({len(extra)}),"
                         f" differ {differ[:5]} ({len(differ)})")  # fmt: skip
    return "; ".join(lines)


def sync(engine: Engine, crm: LiveCrm, connection_name: str, **options: Any) -> Any:
    """One run of the sync engine with a new connector (each run of the CLI or the worker makes its own)."""
    return run_sync(engine, crm.connector(), connection_name=connection_name, **options)


class ContractTest:
    """Base of the property classes; ``contract_suite`` binds ``driver``."""

    driver: ClassVar[CrmDriver]


class KeysUniqueAndNonNull(ContractTest):
    """1. Within a stream, each record of one kind has a non-empty ``external_id`` that no other record of that kind
    in the stream has (a duplicate would be two rows for one record, or one silently overwriting the other)."""

    @pytest.mark.parametrize("since", [None, LONG_AGO], ids=["full-read", "incremental-read"])
    def test_keys_are_unique_and_non_null(self, crm: LiveCrm, since: datetime | None) -> None:
        keys: Counter[tuple[str, str, str]] = Counter()
        for stream, page in read(crm.connector(), since=since):
            for record in page.records:
                assert isinstance(record.external_id, str) and record.external_id.strip(), (stream, record)
                keys[(stream, record.kind, record.external_id)] += 1
            for skipped in page.skipped:
                assert skipped.external_id, f"{stream}: a skipped record without an id: {skipped.reason}"
        assert keys, "the small org gave no records"
        duplicates = sorted(key for key, count in keys.items() if count > 1)
        assert not duplicates, f"keys read more than once within a stream: {duplicates[:10]}"


class RecordsMatchTheCanonicalSchema(ContractTest):
    """2. Every record is the canonical model of its kind (``connectors/records.py``) and validates again from its
    own dump (no ``model_construct`` shortcut, no value the model would refuse); its kind is the one
    ``connector.kind_of(stream)`` names, or one the driver lists with a reason (``companions``); its raw payload is
    JSON (it is stored as JSON); nothing of the generated org is skipped."""

    @pytest.mark.parametrize("since", [None, LONG_AGO], ids=["full-read", "incremental-read"])
    def test_records_match_the_canonical_schema(self, crm: LiveCrm, since: datetime | None) -> None:
        connector = crm.connector()
        assert set(self.driver.companions) <= set(connector.streams), "companions names no stream of the connector"
        seen: set[str] = set()
        for stream, page in read(connector, since=since):
            assert not page.skipped, f"{stream}: {[s.reason for s in page.skipped][:3]}"
            allowed = {connector.kind_of(stream), *self.driver.companions.get(stream, {})}
            for record in page.records:
                assert record.kind in allowed, f"{stream} gave a {record.kind} record {record.external_id}"
                model = MODELS[record.kind]
                assert type(record) is model, f"{stream} {record.external_id} is a {type(record).__name__}"
                assert model.model_validate(record.model_dump()) == record, f"{stream} {record.external_id}"
                json.dumps(record.raw)
                seen.add(record.kind)
        missing = {connector.kind_of(stream) for stream in connector.streams} - seen
        assert not missing, f"no records of kind {sorted(missing)}: the check would pass on nothing"


class KilledMidSync(Exception):
    """The stand-in for kill -9: raised from the progress callback after a page was committed."""


def kill_after(pages: int) -> Any:
    """A ``progress`` callback that raises once ``pages`` pages are committed."""
    committed = 0

    def progress(stream: str, fetched: int, total: int) -> None:
        nonlocal committed
        committed += 1
        if committed >= pages:
            raise KilledMidSync(f"after {committed} pages, in {stream}")

    return progress


class CursorsResumeAfterAKill(ContractTest):
    """3. A sync killed after some pages were committed, then run again, leaves the same local copy as a sync that
    was never interrupted: every table, row by row (external id, change stamp, deleted or not). Killed after the
    first page, halfway, and between two pages of one stream (where the stream's cursor, not only its end-of-stream
    bookkeeping, decides where the next run starts)."""

    @pytest.mark.parametrize("kill_at", ["first-page", "midway", "mid-stream"])
    def test_a_killed_sync_run_again_equals_an_uninterrupted_one(
        self, crm: LiveCrm, engine: Engine, kill_at: str
    ) -> None:
        pages: list[str] = []  # the stream of each page the uninterrupted sync committed, in order
        reference = sync(engine, crm, "uninterrupted", progress=lambda stream, *_: pages.append(stream))
        assert reference.status == "ok"
        kill_after_pages = _kill_point(pages, kill_at, self.driver)
        assert 1 <= kill_after_pages < len(pages), f"a sync of {len(pages)} pages cannot be killed {kill_at}"

        with pytest.raises(KilledMidSync):
            sync(engine, crm, "resumed", progress=kill_after(kill_after_pages))
        assert local_copy(engine, crm, "resumed") != local_copy(engine, crm, "uninterrupted"), "nothing left to do"
        assert sync(engine, crm, "resumed").status == "ok"
        resumed, uninterrupted = local_copy(engine, crm, "resumed"), local_copy(engine, crm, "uninterrupted")
        assert resumed == uninterrupted, differences(resumed, uninterrupted)


def _kill_point(pages: list[str], kill_at: str, driver: CrmDriver) -> int:
    """After how many committed pages to kill the sync."""
    if kill_at == "first-page":
        return 1
    if kill_at == "midway":
        return len(pages) // 2
    if driver.one_page_per_stream:
        pytest.skip(f"{driver.title} contract exception: {driver.one_page_per_stream}")
    spans = [n for n in range(1, len(pages)) if pages[n] == pages[n - 1]]
    assert spans, f"no stream spans two pages ({pages}): make the driver's org bigger or its pages smaller"
    return spans[0]


class RetriableFaultIsRetried(ContractTest):
    """4. A retriable fault (a 503 once, planned by the driver in the CRM) is retried: the sync succeeds, with one
    call more than a sync without the fault and the same local copy."""

    def test_a_503_once_is_retried(self, crm: LiveCrm, engine: Engine) -> None:
        fault = self.driver.plan_retriable_fault(crm)
        faulted = sync(engine, crm, "faulted")
        assert fault.fired == 1, "the planned 503 was never served: the test proved nothing"
        reference = sync(engine, crm, "reference")
        assert faulted.status == reference.status == "ok"
        assert faulted.api_calls == reference.api_calls + 1
        faulted_copy, reference_copy = local_copy(engine, crm, "faulted"), local_copy(engine, crm, "reference")
        assert faulted_copy == reference_copy, differences(faulted_copy, reference_copy)


class DeletesArrive(ContractTest):
    """5. A record deleted (archived) in the CRM after a first sync is marked deleted by the next, incremental, sync;
    no other row of its table changes. ``deleted_stream`` runs over the driver's ``deletable`` streams."""

    def test_an_incremental_sync_marks_the_deleted_record(
        self, crm: LiveCrm, engine: Engine, deleted_stream: str
    ) -> None:
        assert sync(engine, crm, "contract").status == "ok"
        kind = crm.connector().kind_of(deleted_stream)
        before = local_copy(engine, crm, "contract")[kind]
        record_id = _first_live(engine, crm, "contract", kind=kind, crm_object=deleted_stream)

        self.driver.delete(crm, deleted_stream, record_id)
        report = sync(engine, crm, "contract")
        after = local_copy(engine, crm, "contract")[kind]
        assert not report.full
        assert after[record_id][1], f"{deleted_stream} {record_id} deleted in the CRM is live here"
        assert report.counts[deleted_stream].deleted == 1
        assert {i for i in after if after[i][1] != before[i][1]} == {record_id}
        assert after.keys() == before.keys()


def _first_live(engine: Engine, crm: LiveCrm, connection_name: str, *, kind: str, crm_object: str) -> str:
    table: Any = TABLES[kind]
    with Session(engine) as session:
        found = session.execute(
            select(table.external_id)
            .where(
                table.connection_id == _connection_id(session, crm, connection_name),
                table.crm_object == crm_object,
                table.is_deleted.is_(False),
            )
            .order_by(table.external_id)
        ).first()
    assert found is not None, f"no live {crm_object} stored"
    return str(found[0])


class TargetedFetchEqualsFullRead(ContractTest):
    """6. ``connector.fetch(stream, ids)`` (the webhooks' targeted refresh) gives the same records as the full read
    (``pages(stream, since=None)``), of every kind the stream's pages carry, compared on ``model_dump()`` less the
    driver's ``volatile`` fields. Volatile would be a field that may change between two reads of an unchanged record
    (a read time, a field one API returns and the other does not): none of the three CRMs has one, so ``raw`` and
    the change stamp are compared too, and the link tuples in their order (both connectors sort or keep the CRM's
    stable order). Streams ``fetch`` does not serve are the driver's ``not_fetched``, each with its reason."""

    def test_fetch_equals_the_full_read(self, crm: LiveCrm) -> None:
        connector = crm.connector()
        assert set(self.driver.not_fetched) <= set(connector.streams), "not_fetched names no stream of the connector"
        for stream in connector.streams:
            if stream in self.driver.not_fetched:  # each with its reason in the driver
                continue
            full = self._dumps(page.records for page in connector.pages(stream, since=None))
            kind = connector.kind_of(stream)
            live = sorted(i for k, i in full if k == kind and not full[(k, i)]["is_deleted"])
            assert live, f"{stream}: the small org has no record to fetch, the comparison would pass on nothing"
            # deleted ones aside: a CRM may answer them with a deleted record or with a Deletion (see the next test)
            full = {key: dump for key, dump in full.items() if not dump["is_deleted"]}
            page, gone = connector.fetch(stream, live)
            assert not gone, f"{stream}: fetch lost {[d.external_id for d in gone][:5]}"
            fetched = self._dumps([page.records])
            assert fetched.keys() == full.keys(), f"{stream}: {sorted(fetched.keys() ^ full.keys())[:5]}"
            differ = sorted(key for key in full if fetched[key] != full[key])
            assert not differ, f"{stream}: fetched differently from the full read: {differ[:5]}"

    def test_fetch_reports_a_deleted_record_as_deleted(self, crm: LiveCrm) -> None:
        """A record deleted in the CRM comes back from ``fetch`` as deleted: a record with ``is_deleted`` (Salesforce:
        queryAll) or a ``Deletion`` (HubSpot, memory); a live one beside it stays live."""
        stream = self.driver.deletable[0]
        connector = crm.connector()
        kind = connector.kind_of(stream)
        live = sorted(
            r.external_id
            for page in connector.pages(stream, since=None)
            for r in page.records
            if r.kind == kind and not r.is_deleted
        )
        deleted, kept = live[0], live[1]
        self.driver.delete(crm, stream, deleted)
        page, gone = crm.connector().fetch(stream, [deleted, kept])
        records = {r.external_id: r for r in page.records if r.kind == kind}
        assert (deleted in {d.external_id for d in gone}) != (deleted in records and records[deleted].is_deleted)
        assert kept in records and not records[kept].is_deleted and kept not in {d.external_id for d in gone}

    def _dumps(self, pages: Any) -> dict[tuple[str, str], dict[str, Any]]:
        volatile = set(self.driver.volatile)
        return {
            (record.kind, record.external_id): record.model_dump(exclude=volatile)
            for records in pages
            for record in records
        }
