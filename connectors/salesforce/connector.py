"""Salesforce pull connector: SOQL pages → canonical records, with retries, re-auth and API-budget guard.

It talks to the org through simple-salesforce (REST ``query``/``queryAll``/``query_more``, ``sobjects/X/deleted``),
never touches the database and never reads global settings. Every API call goes through ``_call``: that is the one
place where retries (tenacity), session renewal and the daily-allowance guard are decided; which 403 is which
limit is told apart in ``limits``.

Time comes from the org: every answer's ``Date`` header. A page's cursor never passes it (one record stamped in
the future must not stall a stream), and each page carries the org's time its query began (``began_at``), from
which the next run's look-back is measured (:meth:`SalesforceConnector.incremental_since`).

Shared Activities: Task and Event queries bring every related contact with a subquery on TaskRelations /
EventRelations; the streams TaskRelation and EventRelation read relations changed since the last run and bring the
activities they belong to again, with all their contacts.

E-mails: an e-mail task takes its direction from its EmailMessage; the EmailMessage stream brings the tasks of
changed e-mails again, and maps the e-mails without a task (Email-to-Case) to activities of their own through their
cases (``case_emails``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

import orjson
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.errors import (
    ApiLimitError,
    AuthenticationError,
    ConfigurationError,
    FatalError,
    RetriableError,
    SkippableError,
)
from connectors.records import CanonicalRecord, Deletion, SkippedRecord
from connectors.retry import call_with_retries
from connectors.salesforce import mapping
from connectors.salesforce.auth import Token, can_renew, fetch_token
from connectors.salesforce.case_emails import CaseLookup, NoCases, map_case_emails
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.limits import DATE_SLACK, OrgAnswers, refusal

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIABLE_CODES = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"}


class _Salesforce(Salesforce):
    """simple-salesforce's client with its JSON answers decoded by orjson: a query page of 2,000 tasks (1 MB) took
    8.3 ms with ``json`` and plain dicts, 2.9 ms with orjson, on the reading thread that shares the GIL with the
    storing one (a first sync reads 64 such pages at 100,000 activities). The values are the same: Salesforce's
    numbers have at most 18 digits (orjson turns an integer beyond 64 bits into a float; none reaches that). What
    orjson refuses (NaN, a lone surrogate escape, text that is not UTF-8) goes to simple-salesforce's own decoding,
    which accepts or refuses it as before."""

    def parse_result_to_json(self, result: requests.Response) -> Any:
        try:
            return orjson.loads(result.content)
        except orjson.JSONDecodeError:
            return super().parse_result_to_json(result)


@dataclass
class Page:
    """One page of a query, mapped. ``cursor`` is (SystemModstamp, Id) of the page's last row, never later than the
    org's clock; ``began_at`` the org's time when the query behind the page began (None: unknown); ``crm_object``
    the object its records are, when not ``sobject`` (a relation stream's page holds activities)."""

    sobject: str
    records: list[CanonicalRecord] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)
    cursor: tuple[datetime, str] | None = None
    total_size: int = 0
    began_at: datetime | None = None
    crm_object: str | None = None


@dataclass
class DeletedWindow:
    deletions: list[Deletion]
    earliest_available: datetime | None
    latest_covered: datetime | None


def soql_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error_code(exc: SalesforceError) -> tuple[str, str]:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    return "", str(content)[:300]


def _query(
    sf: Salesforce, *, query: str, include_deleted: bool, timeout: float, headers: dict[str, str] | None
) -> dict[str, Any]:
    return cast(
        dict[str, Any], sf.query(query, include_deleted=include_deleted, headers=headers or {}, timeout=timeout)
    )


def _query_more(sf: Salesforce, *, url: str, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    return cast(dict[str, Any], sf.query_more(url, identifier_is_url=True, headers=headers, timeout=timeout))


class _NoSharedActivities(ConfigurationError):
    """The org does not know TaskRelation/EventRelation: Shared Activities is off."""


class _NoEmailMessages(ConfigurationError):
    """The integration user cannot read EmailMessage (no Enhanced Email, or no access to it)."""


class _NoLeads(ConfigurationError):
    """The integration user cannot read Lead (no Read on Lead in its profile or permission sets)."""


class SalesforceConnector:
    """Reads one Salesforce org. Create it, call ``pages()``/``deleted()``; ``api_calls`` counts REST calls made."""

    crm = "salesforce"

    def __init__(self, config: SalesforceConfig, *, session: requests.Session | None = None) -> None:
        self.config = config
        self.session = session or requests.Session()
        if config.ca_bundle:
            self.session.verify = str(config.ca_bundle)
            # REQUESTS_CA_BUNDLE in the environment would override session.verify otherwise.
            self.session.trust_env = False
        self.answers = OrgAnswers()
        self.session.hooks["response"].append(self.answers.observe)
        self.api_calls = 0
        self._token: Token | None = None
        self._sf: Salesforce | None = None
        self._shared_activities = config.shared_activities
        self._first_began: datetime | None = None  # the org's time when this connector's first query began
        self._email_messages = config.email_messages
        self._leads = config.leads
        # the cases of e-mails without a task, read for this run (a refusal is said once, then not asked again)
        self._cases = CaseLookup(query=lambda soql: self._first_page(partial(str, soql), include_deleted=True)[0])
        self.streams: tuple[str, ...] = (
            tuple(o for o in mapping.OBJECTS if config.leads or o != mapping.LEAD_STREAM)
            + ((mapping.EMAIL_STREAM,) if config.email_messages else ())
            + (mapping.RELATION_STREAMS if config.shared_activities else ())
        )

    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.config.lookback_seconds)

    def incremental_since(self, *, cursor_at: datetime, read_began_at: datetime) -> datetime:
        """Where the next incremental read of a stream starts, given its cursor (newest SystemModstamp stored) and
        the org's time its last complete read began. The look-back exists for late commits: a record committed
        after that read began, stamped up to ``lookback`` before it. So it is measured from the read's start, not
        from the cursor: what was stamped earlier and already read costs nothing again. When the cursor lies
        before that window, nothing can be missing between the two, and the read starts just after the cursor."""
        settled = read_began_at - self.lookback
        return settled if cursor_at >= settled else cursor_at + timedelta(milliseconds=1)

    def kind_of(self, stream: str) -> str:
        return mapping.KINDS[stream]

    def supports_deleted(self, stream: str) -> bool:
        # A relation deleted on its own changes its activity (the activity stream reads it again); a relation
        # deleted with its activity goes with it. No getDeleted for the relation streams.
        if stream == mapping.LEAD_STREAM and not self._leads:
            return False
        return stream in mapping.FIELDS and mapping.has_is_deleted(stream)

    def instance_url(self, known: str | None = None) -> str | None:
        """The org's base URL for record links; the token's answer wins over ``known`` (an org can move)."""
        return self._token.instance_url if self._token else self.config.instance_url

    def usage_text(self) -> str | None:
        usage = self.api_usage
        return f"{usage[0]}/{usage[1]}" if usage else None

    # -- connection -------------------------------------------------------------------------------------------
    def connect(self) -> None:
        self._token = fetch_token(self.config, self.session)
        self._sf = _Salesforce(
            instance_url=self._token.instance_url,
            session_id=self._token.access_token,
            session=self.session,
            version=self.config.api_version,
            # plain dicts: simple-salesforce's default OrderedDict made decoding a 2,000-record page 60 % slower
            object_pairs_hook=dict,
        )

    @property
    def sf(self) -> Salesforce:
        if self._sf is None:
            self.connect()
        assert self._sf is not None
        return self._sf

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, limit) of the org's daily API requests as of the last answer (``Sforce-Limit-Info``), errors
        included."""
        if self.answers.usage is not None:
            return self.answers.usage
        usage = self._sf.api_usage.get("api-usage") if self._sf else None
        return (usage.used, usage.total) if usage else None

    # -- the one place where retries are decided ---------------------------------------------------------------
    def _call(self, name: str, fn: Callable[[Salesforce], T]) -> T:
        return call_with_retries(
            lambda: self._call_once(name, fn),
            crm="Salesforce",
            name=name,
            max_attempts=self.config.max_attempts,
            wait_base=self.config.retry_wait_base,
            wait_max=self.config.retry_wait_max,
        )

    def _call_once(self, name: str, fn: Callable[[Salesforce], T]) -> T:
        self._guard_budget()
        renewed = False
        while True:
            sf = self.sf
            self.api_calls += 1
            try:
                return fn(sf)
            except SalesforceExpiredSession:
                if renewed or not can_renew(self.config):
                    raise AuthenticationError(
                        "the Salesforce session expired and cannot be renewed"
                        + (
                            ""
                            if can_renew(self.config)
                            else ": an access token was configured — configure"
                            " username/password or JWT bearer so okrsync can log in again"
                        )
                    ) from None
                log.info("Salesforce session expired; logging in again")
                self.connect()
                renewed = True
            except requests.exceptions.SSLError:
                raise ConfigurationError(
                    f"TLS verification failed for {self._token.instance_url if self._token else '?'}:"
                    " set OKRSYNC_SALESFORCE__CA_BUNDLE to the CA that signed it"
                ) from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                raise RetriableError(f"{type(exc).__name__} talking to Salesforce") from None
            except SalesforceRefusedRequest as exc:
                code, message = _error_code(exc)
                raise refusal(name, code, message, self.api_usage) from None
            except SalesforceMalformedRequest as exc:
                code, message = _error_code(exc)
                if code in RETRIABLE_CODES:
                    raise RetriableError(f"{code}: {message}") from None
                if code == "INVALID_TYPE" and self._shared_activities and "Relation" in message:
                    raise _NoSharedActivities(message) from None
                if code == "INVALID_TYPE" and mapping.EMAIL_STREAM in message:
                    raise _NoEmailMessages(message) from None
                if code == "INVALID_TYPE" and f"'{mapping.LEAD_STREAM}'" in message:
                    raise _NoLeads(message) from None
                if code == "INVALID_TYPE" and f"'{mapping.CASE_OBJECT}'" in message:
                    raise NoCases(message) from None
                if code in {"INVALID_FIELD", "INVALID_TYPE"}:
                    raise ConfigurationError(
                        f"Salesforce does not know a field or object okrsync asked for ({code}: {message.strip()})"
                        f" — check OKRSYNC_SALESFORCE__CUSTOM_FIELDS ({self.config.custom_fields})"
                    ) from None
                raise FatalError(f"Salesforce rejected {name}: {code} {message.strip()}") from None
            except SalesforceResourceNotFound as exc:
                raise ConfigurationError(
                    f"Salesforce has no resource {exc.url}: check the instance URL and API version"
                ) from None
            except SalesforceGeneralError as exc:
                code, message = _error_code(exc)
                if exc.status == 429 or exc.status >= 500 or code in RETRIABLE_CODES:
                    raise RetriableError(f"HTTP {exc.status} {code}") from None
                raise FatalError(f"Salesforce answered HTTP {exc.status} to {name}: {code} {message}") from None

    def _guard_budget(self) -> None:
        usage = self.api_usage
        if usage and usage[1] and usage[0] >= usage[1] * self.config.max_api_share:
            raise ApiLimitError(
                f"stopped before using more of the org's daily API allowance: {usage[0]} of {usage[1]} used,"
                f" okrsync may use {self.config.max_api_share:.0%} (OKRSYNC_SALESFORCE__MAX_API_SHARE);"
                " the next run resumes where this one stopped",
                used=usage[0],
                limit=usage[1],
            )

    # -- reading ---------------------------------------------------------------------------------------------
    def _select(self, sobject: str) -> list[str]:
        fields = mapping.select_fields(
            sobject, custom=self.config.custom_fields.get(sobject, []), multi_currency=self.config.multi_currency
        )
        subquery = mapping.relation_subquery(sobject) if self._shared_activities else None
        return [*fields, subquery] if subquery else fields

    def _select_query(self, sobject: str, rest: str) -> str:
        return f"SELECT {', '.join(self._select(sobject))} FROM {sobject}{rest}"

    def soql(self, sobject: str, *, since: datetime | None) -> str:
        where = f" WHERE SystemModstamp >= {soql_datetime(since)}" if since else ""
        return self._select_query(sobject, f"{where} ORDER BY SystemModstamp ASC, Id ASC")

    def _first_page(
        self, build: Callable[[], str], *, include_deleted: bool, headers: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], datetime | None]:
        """Run the query ``build()`` returns; (its first page, the org's time the query began). An org without
        Shared Activities is noticed here once: the query is built again without the relation subquery."""
        timeout = self.config.timeout_seconds
        before = time.monotonic()
        for _attempt in range(2):
            query = build()
            try:
                result: dict[str, Any] = self._call(
                    "query",
                    partial(_query, query=query, include_deleted=include_deleted, timeout=timeout, headers=headers),
                )
            except _NoSharedActivities as exc:
                self._no_shared_activities(exc)
                if query == build():
                    raise
                continue
            began = self.answers.server_time_at(before)
            if self._first_began is None:
                self._first_began = began
            return result, began
        raise ConfigurationError("Salesforce refused the query without the Shared Activities subquery too")

    def _no_shared_activities(self, exc: Exception) -> None:
        log.warning(
            "Salesforce has no TaskRelation/EventRelation (%s): Shared Activities is off in this org, so an activity"
            " links only its WhoId; set OKRSYNC_SALESFORCE__SHARED_ACTIVITIES=false to save this call",
            str(exc).strip()[:120],
        )
        self._shared_activities = False

    def pages(self, stream: str, *, since: datetime | None) -> Iterator[Page]:
        """Yield mapped pages of the CRM object ``stream`` changed at or after ``since`` (all when None), oldest first.

        Uses ``queryAll`` where the object has ``IsDeleted`` so soft deletes arrive as records with
        ``is_deleted=True`` in the same pages, at no extra API cost.
        """
        if stream in mapping.RELATION_STREAMS:
            yield from self._relation_pages(stream, since=since)
            return
        if stream == mapping.EMAIL_STREAM:
            yield from self._email_pages(since=since)
            return
        if stream == mapping.LEAD_STREAM and not self._leads:
            return
        include_deleted = mapping.has_is_deleted(stream)
        headers = {"Sforce-Query-Options": f"batchSize={self.config.page_size}"}
        timeout = self.config.timeout_seconds
        try:
            result, began = self._first_page(
                lambda: self.soql(stream, since=since), include_deleted=include_deleted, headers=headers
            )
        except _NoLeads as exc:
            log.warning(
                "Salesforce does not let okrsync read Lead (%s): no leads are synced, so speed-to-lead and lead"
                " counts stay empty. Give the integration user Read on Lead (the okrsync_integration permission"
                " set in deploy/salesforce grants it), or set OKRSYNC_SALESFORCE__LEADS=false to save these calls",
                str(exc).strip()[:120],
            )
            self._leads = False
            return
        while True:
            yield self._map_page(stream, result, began_at=began)
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = self._call(
                "query_more",
                partial(_query_more, url=next_url, headers=headers, timeout=timeout),
            )

    def _relation_pages(self, stream: str, *, since: datetime | None) -> Iterator[Page]:
        """The activities whose related contacts changed at or after ``since``, read again with all of them.

        A first or full sync reads nothing here: every activity has just come with all its relations. Its cursor
        starts at the org's time this connector's first query began, so a relation added while the activities
        were being read is caught by the next run."""
        if not self._shared_activities:
            return
        if since is None:
            yield self._cursor_page(stream)
            return
        parent = mapping.PARENT_OF[stream]
        parent_field = mapping.RELATIONS[parent][1]
        headers = {"Sforce-Query-Options": f"batchSize={self.config.page_size}"}
        query = (
            f"SELECT Id, {parent_field}, SystemModstamp FROM {stream}"
            f" WHERE SystemModstamp >= {soql_datetime(since)} AND IsWhat = false ORDER BY SystemModstamp ASC, Id ASC"
        )
        try:
            # queryAll: relations deleted along with their activity come too (it is read again, deleted)
            result, began = self._first_page(lambda: query, include_deleted=True, headers=headers)
        except _NoSharedActivities:
            return
        yield from self._parents_again(stream, parent, parent_field, result, began=began, headers=headers)

    def _cursor_page(self, stream: str) -> Page:
        """A first or full read of a stream that re-reads parents: nothing to read (the parents have just come
        whole), only its cursor, at the org's time this connector's first query began."""
        began = self._first_began or self.answers.server_time_at(time.monotonic())
        return Page(sobject=stream, cursor=(began, "") if began else None, began_at=began)

    def _result_pages(self, result: dict[str, Any], *, headers: dict[str, str]) -> Iterator[dict[str, Any]]:
        """The pages of a query whose first page is ``result``, following ``nextRecordsUrl``."""
        while True:
            yield result
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = self._call(
                "query_more",
                partial(_query_more, url=next_url, headers=headers, timeout=self.config.timeout_seconds),
            )

    def _row_cursor(self, stream: str, rows: list[dict[str, Any]]) -> tuple[datetime, str] | None:
        cursor = next(
            (
                (stamp, str(row["Id"]))
                for row in reversed(rows)
                if (stamp := mapping.parse_datetime(row.get("SystemModstamp")))
            ),
            None,
        )
        return self._capped(stream, cursor)

    def _parents_again(
        self,
        stream: str,
        parent: str,
        parent_field: str,
        result: dict[str, Any],
        *,
        began: datetime | None,
        headers: dict[str, str],
    ) -> Iterator[Page]:
        """Pages of ``stream`` (rows naming a ``parent`` record in ``parent_field``) as pages of those parents, read
        again as they are now; the cursor is the stream's own. A parent named on an earlier page is not read again:
        the query had every row when it began, so that read already saw them all (two relations of one task may sit
        on either side of a page boundary)."""
        read: set[str] = set()
        for page in self._result_pages(result, headers=headers):
            rows = page.get("records", [])
            yield self._parents_page(stream, parent, parent_field, rows, read=read, page=page, began=began)

    def _parents_page(
        self,
        stream: str,
        parent: str,
        parent_field: str,
        rows: list[dict[str, Any]],
        *,
        read: set[str],
        page: dict[str, Any],
        began: datetime | None,
        with_incoming: bool = False,
    ) -> Page:
        """One page of ``_parents_again``. ``with_incoming``: the rows are e-mails, whose direction and addresses
        their tasks take without looking them up again."""
        fresh = {str(row[parent_field]): row for row in rows if row.get(parent_field)}
        named = sorted(set(fresh) - read)
        read.update(named)
        emails = {i: mapping.email_fields(fresh[i]) for i in named} if with_incoming else None
        found, _gone = self.fetch(parent, named, emails=emails)
        return Page(
            sobject=stream,
            crm_object=parent,
            records=found.records,
            skipped=found.skipped,
            cursor=self._row_cursor(stream, rows),
            total_size=int(page.get("totalSize") or 0),
            began_at=began,
        )

    def _email_pages(self, *, since: datetime | None) -> Iterator[Page]:
        """The e-mail tasks whose EmailMessage changed at or after ``since``, read again with their direction, and
        the e-mails without a task (Email-to-Case: ``ActivityId`` empty) as activities of their own.

        An incremental run makes one query (``queryAll``: deleted e-mails arrive with IsDeleted) for both kinds; its
        rows with a task bring that task again, those without one are mapped here, with one Case look-up per 300
        cases they name (none on a page without task-less e-mails, so a quiet run costs what it cost before).

        A first or full sync reads the e-mail tasks nowhere here: every e-mail task has just come with its direction
        (``_map_page`` looks them up). It reads the task-less e-mails (``WHERE ActivityId = null``), each page
        dated as if the stream's read began when this connector's first query began; the stream's cursor is set to
        that time only after the last of them. Set first, a full read killed between that cursor and the e-mails
        resumed from it (an incremental read from then, so none of the older e-mails) and its end-of-stream sweep
        marked every e-mail on a case deleted (a kill -9 test found it). An upgrade that adds this stream, or these
        e-mails, to a synced connection needs one ``okrsync sync salesforce --full``."""
        if not self._email_messages:
            return
        where = "ActivityId = null" if since is None else f"SystemModstamp >= {soql_datetime(since)}"
        headers = {"Sforce-Query-Options": f"batchSize={self.config.page_size}"}
        query = (
            f"SELECT {', '.join(mapping.EMAIL_STREAM_FIELDS)} FROM {mapping.EMAIL_STREAM}"
            f" WHERE {where} ORDER BY SystemModstamp ASC, Id ASC"
        )
        try:
            result, began = self._first_page(lambda: query, include_deleted=True, headers=headers)
        except _NoEmailMessages as exc:
            self._no_email_messages(exc)
            if since is None:
                yield self._cursor_page(mapping.EMAIL_STREAM)
            return
        if since is None:  # the e-mail tasks of this read came with the first stream: it began with that
            began = self._first_began or began
        read: set[str] = set()
        for page in self._result_pages(result, headers=headers):
            rows = page.get("records", [])
            if since is not None:  # rows with a task: their task again (a full sync has just read every task)
                yield self._parents_page(
                    mapping.EMAIL_STREAM, "Task", "ActivityId", rows, read=read, page=page, began=began,
                    with_incoming=True,
                )  # fmt: skip
            taskless = [row for row in rows if not row.get("ActivityId")]
            if taskless or since is None:
                yield self._case_email_page(taskless, total=int(page.get("totalSize") or 0), began=began)
        if since is None:
            if self._cases.readable and not self._cases.asked:
                # Case e-mails follow access to their case: a user without Read on Case sees none, and nothing above
                # asked Case. A full sync that found no case to look up asks once, so that it is said (a quiet
                # incremental run never asks)
                self._cases.cases([])
            yield self._cursor_page(mapping.EMAIL_STREAM)

    def _case_email_page(self, rows: list[dict[str, Any]], *, total: int, began: datetime | None) -> Page:
        """Task-less e-mails (their rows) as e-mail activities (``case_emails.map_case_emails``)."""
        records, skipped = map_case_emails(rows, self._cases)
        return Page(
            sobject=mapping.EMAIL_STREAM,
            records=records,
            skipped=skipped,
            cursor=self._row_cursor(mapping.EMAIL_STREAM, rows),
            total_size=total,
            began_at=began,
        )

    def _with_email_direction(self, rows: list[dict[str, Any]], known: dict[str, Any] | None = None) -> None:
        """Put each e-mail task's EmailMessage ``{"Incoming": …, "FromAddress": …, "ToAddress": …, "CcAddress": …}``
        on its row (``mapping.EMAIL_KEY``): one query per 300 e-mail tasks of a page, none for a page without
        e-mails; ``known``: task id → those fields already read (the EmailMessage stream's rows), not asked again."""
        if not self._email_messages:
            return
        for row in rows:
            if row.get("TaskSubtype") in mapping.EMAIL_SUBTYPES and known and str(row.get("Id")) in known:
                row[mapping.EMAIL_KEY] = known[str(row["Id"])]
        wanted = sorted(
            str(row["Id"])
            for row in rows
            if row.get("TaskSubtype") in mapping.EMAIL_SUBTYPES and mapping.EMAIL_KEY not in row and row.get("Id")
        )
        by_task = {str(row["Id"]): row for row in rows if row.get("Id")}
        for start in range(0, len(wanted), 300):
            ids = ", ".join(repr(i) for i in wanted[start : start + 300])
            fields = ", ".join(mapping.EMAIL_FIELDS)
            query = f"SELECT ActivityId, {fields} FROM {mapping.EMAIL_STREAM} WHERE ActivityId IN ({ids})"
            try:
                result, _began = self._first_page(partial(str, query), include_deleted=False)
            except _NoEmailMessages as exc:
                self._no_email_messages(exc)
                return
            for email in result.get("records", []):  # at most 300 rows: one page
                task = by_task.get(str(email.get("ActivityId")))
                if task is not None:
                    task[mapping.EMAIL_KEY] = mapping.email_fields(email)

    def _no_email_messages(self, exc: Exception) -> None:
        log.warning(
            "Salesforce does not let okrsync read EmailMessage (%s): e-mail tasks get no direction, so inbound"
            " e-mails are no inquiries. Turn Enhanced Email on and give the integration user access to e-mails"
            " (Access Activities, and sharing on the tasks; see deploy/README.md), or set"
            " OKRSYNC_SALESFORCE__EMAIL_MESSAGES=false to save these calls",
            str(exc).strip()[:120],
        )
        self._email_messages = False

    def _capped(self, sobject: str, cursor: tuple[datetime, str] | None) -> tuple[datetime, str] | None:
        """The cursor, but never past the org's clock (the last answer's Date, give or take its resolution): a
        record stamped in the future would otherwise make every later record look older than the cursor."""
        now = self.answers.server_date + DATE_SLACK if self.answers.server_date else None
        if cursor is None or now is None or cursor[0] <= now:
            return cursor
        log.warning(
            "%s %s has SystemModstamp %s, ahead of Salesforce's clock (%s): the cursor stays at the org's time",
            sobject,
            cursor[1],
            cursor[0].isoformat(),
            now.isoformat(),
        )
        return (now, "")

    def _map_page(
        self,
        sobject: str,
        result: dict[str, Any],
        *,
        began_at: datetime | None = None,
        emails: dict[str, Any] | None = None,
    ) -> Page:
        page = Page(sobject=sobject, total_size=int(result.get("totalSize") or 0), began_at=began_at)
        if sobject == "Task":
            self._with_email_direction(result.get("records", []), emails)
        for row in result.get("records", []):
            try:
                page.records.append(mapping.to_record(sobject, row, currency=self.config.default_currency))
            except SkippableError as exc:
                log.warning("skipped %s", exc)
                page.skipped.append(SkippedRecord(external_id=row.get("Id"), reason=str(exc), raw=row))
            stamp = row.get("SystemModstamp")
            if stamp and row.get("Id"):
                # a skipped row moves the cursor too: its payload is kept in sync_skip, named by id
                with contextlib.suppress(ValueError):
                    page.cursor = (mapping.parse_datetime(stamp), row["Id"])  # type: ignore[assignment]
        page.cursor = self._capped(sobject, page.cursor)
        return page

    def fetch(
        self, stream: str, ids: list[str], *, emails: dict[str, Any] | None = None
    ) -> tuple[Page, list[Deletion]]:
        """The records ``ids`` of ``stream`` as they are now (``queryAll … WHERE Id IN``, 300 ids per query, so
        soft-deleted ones arrive with IsDeleted): a webhook's targeted refresh. Ids the org no longer has (purged)
        come back as deletions. The page carries no cursor."""
        include_deleted = mapping.has_is_deleted(stream)
        unique = sorted({i for i in ids if i.replace("_", "").isalnum()})  # ids only: nothing else reaches SOQL
        page = Page(sobject=stream)
        # anything else was named by a malformed webhook: reported as skipped (logged with the run), not dropped
        page.skipped += [
            SkippedRecord(external_id=None, reason=f"not a Salesforce id: {i[:64]!r}", raw={"id": i[:200]})
            for i in sorted(set(ids) - set(unique))
        ]
        for start in range(0, len(unique), 300):
            where = f" WHERE Id IN ({', '.join(repr(i) for i in unique[start : start + 300])})"
            result, _began = self._first_page(
                partial(self._select_query, stream, where), include_deleted=include_deleted
            )
            mapped = self._map_page(stream, result, emails=emails)
            page.records += mapped.records
            page.skipped += mapped.skipped
        page.cursor = None
        found = {r.external_id for r in page.records} | {s.external_id for s in page.skipped if s.external_id}
        found15 = {i[:15] for i in found}
        return page, [
            Deletion(external_id=i, deleted_at=None) for i in unique if i not in found and i[:15] not in found15
        ]

    def deleted(self, stream: str, *, start: datetime, end: datetime) -> DeletedWindow:
        """Records deleted between start and end (``getDeleted``: soft and hard deletes of the last 15 days)."""
        start = max(start, end - timedelta(days=29, hours=23))
        # the API takes whole seconds: round the end up so a delete in the current second is inside the window
        end = end.replace(microsecond=0) + timedelta(seconds=1) if end.microsecond else end
        params = {
            "start": start.astimezone(UTC).isoformat(timespec="seconds"),
            "end": end.astimezone(UTC).isoformat(timespec="seconds"),
        }
        answer: dict[str, Any] = self._call(
            "getDeleted",
            lambda sf: cast(
                dict[str, Any],
                sf.restful(f"sobjects/{stream}/deleted/", params=params, timeout=self.config.timeout_seconds),
            ),
        )
        return DeletedWindow(
            deletions=[
                Deletion(external_id=item["id"], deleted_at=mapping.parse_datetime(item.get("deletedDate")))
                for item in answer.get("deletedRecords", [])
            ],
            earliest_available=mapping.parse_datetime(answer.get("earliestDateAvailable")),
            latest_covered=mapping.parse_datetime(answer.get("latestDateCovered")),
        )


__all__ = ["DeletedWindow", "Page", "SalesforceConnector", "soql_datetime"]
