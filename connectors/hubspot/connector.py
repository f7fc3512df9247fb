"""HubSpot pull connector: list/search pages + v4 association batch reads → canonical records.

Uses the official hubspot-api-client with its own urllib3 retries switched off (``retry=False``): retries, rate
limiting and the daily-allowance guard are decided in ``_call`` only. Never touches the database.

- First sync: the list API (100 per page) with each record's associations inline (``?associations=``, up to 100
  entries per record and type); only a record whose inline list goes on past that is resolved by a v4 association
  batch read (up to 1,000 ids per call). The next page is fetched in a background thread while the sync stores the
  current one (``PREFETCH_PAGES`` pages ahead at most, so memory stays flat); an error there surfaces unchanged in
  the caller's thread.
- Answers are read as plain JSON (``_preload_content=False``): the client's model deserialisation (dateutil on every
  timestamp) cost more than everything else in a first sync. Errors still come as the client's ApiException.
- Incremental: the search API (200 per page) on the last-modified property, ascending, paged by keyset (each page
  is the first page of a window starting at the last timestamp read; a timestamp that fills a page is read by
  ``hs_object_id``), never by offset: a record changing while the sync pages cannot be skipped, and the
  10,000-result cap is never reached. The look-back is measured from the start of the last complete read
  (``incremental_since``), not from the cursor: records read before cost nothing again.
- Deletions: archived records never appear in search; ``deleted()`` reads the archived listing. The sync clears
  references to a deleted record itself (``links_outlive_deletes``): HubSpot leaves the associated records alone.
- Companies: v4 reads carry association types; a contact's or deal's primary company is its account
  (``mapping.PRIMARY_COMPANY_TYPE``), every company goes to ``account_ids``.
- Owners: the active and the archived listing (deactivated users) every run; none is ever deleted.
- A cursor never passes the server's clock (HTTP ``Date``), so a change stamp in the future cannot stall a stream.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, TypeVar

import urllib3
from hubspot import HubSpot

from connectors.errors import (
    ApiLimitError,
    AuthenticationError,
    ConfigurationError,
    FatalError,
    RetriableError,
    SkippableError,
)
from connectors.hubspot import mapping
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.mapping import LEAD_STREAM, HubSpotRow, LeadStages, Pipelines, Stage
from connectors.records import CanonicalRecord, Contact, Deletion, SkippedRecord
from connectors.retry import call_with_retries, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")

LIST_LIMIT = 100
SEARCH_LIMIT = 200
ASSOC_BATCH = 1_000
OWNERS_LIMIT = 500
BATCH_READ_LIMIT = 100  # ids per objects batch read
PREFETCH_PAGES = 2  # list/search answers fetched ahead of the page being stored


@dataclass
class Page:
    records: list[CanonicalRecord] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)
    cursor: tuple[datetime, str] | None = None
    total_size: int = 0
    began_at: datetime | None = None  # the server's time when the read behind the page began


@dataclass
class DeletedWindow:
    deletions: list[Deletion]
    earliest_available: datetime | None = None
    latest_covered: datetime | None = None


class RateGuard:
    """Keeps okrsync under the app's per-10-second allowance and the search API's per-second limit, from the
    ``X-HubSpot-RateLimit-*`` headers and its own call times, so 429s are not provoked."""

    def __init__(self, *, burst_share: float, search_per_second: float) -> None:
        self.burst_share = burst_share
        self.search_interval = 1.0 / search_per_second
        self.max_per_interval: int | None = None
        self.interval = 10.0
        self.daily: tuple[int, int] | None = None  # (remaining, limit)
        self._calls: deque[float] = deque()
        self._last_search = 0.0
        self._lock = threading.Lock()

    def before(self, *, search: bool) -> None:
        with self._lock:
            now = time.monotonic()
            if search:
                wait = self._last_search + self.search_interval - now
                if wait > 0:
                    time.sleep(wait)
                    now = time.monotonic()
                self._last_search = now
            if self.max_per_interval:
                allowed = max(1, int(self.max_per_interval * self.burst_share))
                while self._calls and self._calls[0] <= now - self.interval:
                    self._calls.popleft()
                if len(self._calls) >= allowed:
                    time.sleep(self._calls[0] + self.interval - now)
                    now = time.monotonic()
            self._calls.append(now)

    def after(self, headers: Any) -> None:
        if not headers:
            return
        try:
            if headers.get("X-HubSpot-RateLimit-Max"):
                self.max_per_interval = int(headers["X-HubSpot-RateLimit-Max"])
                self.interval = int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds") or 10_000) / 1000
            if headers.get("X-HubSpot-RateLimit-Daily"):
                self.daily = (
                    int(headers["X-HubSpot-RateLimit-Daily-Remaining"]),
                    int(headers["X-HubSpot-RateLimit-Daily"]),
                )
        except (TypeError, ValueError):
            pass


def _body(exc: Any) -> dict[str, Any]:
    try:
        return json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {}


class HubSpotConnector:
    """Reads one HubSpot portal. ``api_calls`` counts the HTTP calls made (retries included)."""

    crm = "hubspot"
    # archiving a company, deal or contact leaves the records associated with it, and HubSpot may still list the
    # associations: the sync clears references to a record it marks deleted itself
    links_outlive_deletes = True

    def __init__(self, config: HubSpotConfig) -> None:
        self.config = config
        options: dict[str, Any] = {
            "access_token": config.access_token.get_secret_value(),
            "host": config.host,
            "retry": False,
        }
        if config.ca_bundle:
            options["ssl_ca_cert"] = str(config.ca_bundle)
        self._client = HubSpot(**options)
        crm = self._client.crm
        # each property access builds a new ApiClient (and connection pool): build them once
        self._basic = crm.objects.basic_api
        self._objects_batch = crm.objects.batch_api
        self._search = crm.objects.search_api
        self._assoc_batch = crm.associations.v4.batch_api
        self._assoc_basic = crm.associations.v4.basic_api
        self._owners = crm.owners.owners_api
        self._pipelines_api = crm.pipelines.pipelines_api
        self._properties_api = crm.properties.core_api
        self._checked_properties: set[str] = set()
        self.api_calls = 0
        self._calls_lock = threading.Lock()  # the prefetch thread and the caller's thread both call
        self.server_time: datetime | None = None  # the Date header of the last answer
        self.guard = RateGuard(burst_share=config.burst_share, search_per_second=config.search_per_second)
        self._pipelines: Pipelines | None = None
        # leads: the leads object (read before contacts, so that a portal refusing it has its contacts' leads read
        # by lifecycle in the same run), else contacts by lifecycle stage
        self._lead_object = config.leads == "object"
        self._lead_stages: LeadStages | None = None
        self.streams: tuple[str, ...] = (
            tuple(s for name in mapping.STREAMS for s in ((LEAD_STREAM, name) if name == "contacts" else (name,)))
            if self._lead_object
            else mapping.STREAMS
        )

    # -- what the sync engine asks -------------------------------------------------------------------------
    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.config.lookback_seconds)

    def incremental_since(self, *, cursor_at: datetime, read_began_at: datetime) -> datetime:
        """Where the next search of a stream starts, given its cursor and the server's time its last complete read
        began. The look-back exists because a change shows in search a moment after its stamp: a record stamped up
        to ``lookback`` before that read began may have been missing from it. So it is measured from the read's
        start, not from the cursor: a bulk update read once is not read (and associated) again by every run until
        a later change moves the cursor. When the cursor lies before that window, nothing can be missing between
        the two, and the read starts just after the cursor."""
        settled = read_began_at - self.lookback
        return settled if cursor_at >= settled else cursor_at + timedelta(milliseconds=1)

    def kind_of(self, stream: str) -> str:
        return mapping.KINDS[stream]

    def instance_url(self, known: str | None = None) -> str | None:
        """The portal's record pages, ``https://<uiDomain>/contacts/<portalId>`` (a deal is
        ``…/record/0-3/<id>``), read once from the account details API (scope ``oauth``, which every token has).
        ``known`` is what an earlier sync stored: a portal does not move, so no call is made again. None when HubSpot
        refuses the call (the sync goes on; the dashboard shows HubSpot records without links)."""
        if known and "/contacts/" in known:
            return known
        try:
            details = self._call("account details", self._account_details)
        except (AuthenticationError, FatalError) as exc:
            log.warning("no HubSpot record links: %s", exc)
            return None
        portal, domain = details.get("portalId"), str(details.get("uiDomain") or "app.hubspot.com")
        return f"https://{domain}/contacts/{int(portal)}" if portal else None

    def _account_details(self) -> tuple[dict[str, Any], int, Any]:
        # hubspot-api-client has no account-info API: the owners API's configured ApiClient (host, token, CA bundle,
        # no retries) makes the call, and "object" leaves the answer a plain dict
        return self._owners.api_client.call_api(
            "/account-info/v3/details",
            "GET",
            header_params={"Accept": "application/json"},
            response_types_map={200: "object"},
            auth_settings=["oauth2"],
            _return_http_data_only=False,
        )

    def supports_deleted(self, stream: str) -> bool:
        return True

    def usage_text(self) -> str | None:
        if not self.guard.daily:
            return None
        remaining, limit = self.guard.daily
        return f"{limit - remaining}/{limit}"

    # -- the one place where retries are decided ---------------------------------------------------------------
    def _call(self, name: str, fn: Callable[[], tuple[T, int, Any]], *, search: bool = False) -> T:
        return call_with_retries(
            lambda: self._call_once(name, fn, search=search),
            crm="HubSpot",
            name=name,
            max_attempts=self.config.max_attempts,
            wait_base=self.config.retry_wait_base,
            wait_max=self.config.retry_wait_max,
        )

    def _call_once(self, name: str, fn: Callable[[], tuple[T, int, Any]], *, search: bool) -> T:
        if self.guard.daily:
            remaining, limit = self.guard.daily
            if limit - remaining >= limit * self.config.max_daily_share:
                raise ApiLimitError(
                    f"stopped before using more of the portal's daily API allowance: {limit - remaining} of {limit}"
                    f" used, okrsync may use {self.config.max_daily_share:.0%} (OKRSYNC_HUBSPOT__MAX_DAILY_SHARE)",
                    used=limit - remaining,
                    limit=limit,
                )
        self.guard.before(search=search)
        with self._calls_lock:
            self.api_calls += 1
        try:
            data, _status, headers = fn()
        except urllib3.exceptions.SSLError as exc:
            raise ConfigurationError(f"TLS verification failed for {self.config.host}: {exc}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetriableError(f"{type(exc).__name__} talking to HubSpot") from None
        except Exception as exc:  # each hubspot sub-package has its own ApiException: decide by .status
            status = getattr(exc, "status", None)
            if status is None:
                raise
            self.guard.after(getattr(exc, "headers", None))
            body = _body(exc)
            error = self._translate(name, int(status), body)
            error.http_status = int(status)  # type: ignore[attr-defined]
            if isinstance(error, RetriableError):
                error.retry_after = retry_after_seconds(getattr(exc, "headers", None)) or self._window(body)
            raise error from None
        self.guard.after(headers)
        self._server_clock(headers)
        return data

    def _window(self, body: dict[str, Any]) -> float | None:
        """How long a 429 of a rolling limit asks to wait when no Retry-After says: the limit's window (the app's
        10-second allowance, ``X-HubSpot-RateLimit-Interval-Milliseconds``; the search API's second). Other apps of
        the portal, and okrsync's own writer, share the allowance, so pacing alone cannot avoid every 429
        (https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details)."""
        policy = body.get("policyName")
        window = {"TEN_SECONDLY_ROLLING": self.guard.interval, "SECONDLY": 1.0}.get(str(policy))
        cap = self.config.rate_limit_wait_max
        return window if window is None or cap is None else min(window, cap)

    def _server_clock(self, headers: Any) -> None:
        # the HTTP Date header (whole seconds): a cursor is never moved past the server's own clock
        try:
            stamp = parsedate_to_datetime(str(headers.get("Date"))) if headers and headers.get("Date") else None
        except (TypeError, ValueError):
            stamp = None
        if stamp is not None:
            self.server_time = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)

    def _cursor_limit(self) -> datetime:
        """The latest time a cursor may take: the server's clock as its last answer gave it (or this machine's, if
        that is behind), so that a record with a change stamp in the future cannot move the cursor past every change
        still to come."""
        now = datetime.now(UTC)
        return min(now, self.server_time) if self.server_time else now

    def _translate(self, name: str, status: int, body: dict[str, Any]) -> Exception:
        message = str(body.get("message") or "")
        if status == 429:
            if body.get("policyName") == "DAILY":
                used = limit = None
                if self.guard.daily:
                    used, limit = self.guard.daily[1] - self.guard.daily[0], self.guard.daily[1]
                return ApiLimitError(
                    f"HubSpot refused: the portal's daily API limit is spent ({message}); the"
                    " sync resumes where it stopped once the limit resets",
                    used=used,
                    limit=limit,
                )
            return RetriableError(f"429 {body.get('policyName') or 'rate limit'}")
        if status >= 500:
            return RetriableError(f"HTTP {status}")
        if status == 401:
            return AuthenticationError(
                f"HubSpot refused the access token ({message or 'HTTP 401'}) — create a"
                " private app token (or renew the OAuth token) and set OKRSYNC_HUBSPOT__ACCESS_TOKEN"
            )
        if status == 403:
            scopes = _required_scopes(body)
            hint = f": add scope {', '.join(scopes)} to the private app" if scopes else ""
            return AuthenticationError(f"HubSpot refused {name} — {message or 'HTTP 403'}{hint}")
        return FatalError(f"HubSpot rejected {name}: HTTP {status} {body.get('category') or ''} {message}".strip())

    # -- pipelines, owners ---------------------------------------------------------------------------------------
    def pipelines(self) -> Pipelines:
        if self._pipelines is None:
            answer = self._call("pipelines", lambda: self._pipelines_api.get_all_with_http_info("deals"))
            stages: dict[str, Stage] = {}
            for pipeline in answer.results:
                for stage in pipeline.stages:
                    meta = stage.metadata or {}
                    probability = float(meta["probability"]) if meta.get("probability") not in (None, "") else None
                    closed = str(meta.get("isClosed", "false")).lower() == "true"
                    stages[stage.id] = Stage(
                        id=stage.id,
                        label=stage.label,
                        display_order=stage.display_order,
                        probability=probability,
                        is_closed=closed,
                        is_won=closed and probability == 1.0,
                    )
            self._pipelines = Pipelines(stages=stages)
        return self._pipelines

    def _owner_pages(self) -> Iterator[Page]:
        """Owners are few and not searchable: every run lists them all (one call per 500), the active ones and the
        archived ones (deactivated users, ``archived=true``: their records keep the owner id). The last page sets the
        cursor."""
        newest: tuple[datetime, str] | None = None
        for archived in (False, True):
            after: str | None = None
            while True:
                answer = self._call(
                    "owners",
                    partial(self._owners.get_page_with_http_info, limit=OWNERS_LIMIT, after=after, archived=archived),
                )
                page = Page()
                for owner in answer.results:
                    try:
                        record = mapping.owner_record(self._owners.api_client.sanitize_for_serialization(owner))
                        page.records.append(record)
                        newest = max(newest or (record.modified_at, ""), (record.modified_at, record.external_id))
                    except SkippableError as exc:
                        page.skipped.append(SkippedRecord(external_id=str(owner.id), reason=str(exc), raw={}))
                after = answer.paging.next.after if answer.paging and answer.paging.next else None
                if not after and archived:
                    page.cursor = newest
                yield page
                if not after:
                    break

    # -- objects -----------------------------------------------------------------------------------------------
    def _check_custom_properties(self, stream: str) -> None:
        """HubSpot silently omits properties it does not know: check the configured ones once per object type."""
        wanted = self._extra_properties(stream)
        if not wanted or stream in self._checked_properties:
            return
        answer = self._call("properties", partial(self._properties_api.get_all_with_http_info, stream))
        known = {prop.name for prop in answer.results}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise ConfigurationError(
                f"HubSpot has no {stream} propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}"
                " — check OKRSYNC_HUBSPOT__CUSTOM_PROPERTIES and __CLOSE_DATE_PUSHES_PROPERTY (internal names, not "
                "labels)"
            )
        self._checked_properties.add(stream)

    def _extra_properties(self, stream: str) -> list[str]:
        extra = list(self.config.custom_properties.get(stream, []))
        pushes = self.config.close_date_pushes_property
        if stream == "deals" and pushes and pushes not in extra:
            extra.append(pushes)
        return extra

    def _properties(self, stream: str) -> list[str]:
        self._check_custom_properties(stream)
        props = list(mapping.PROPERTIES[stream]) + self._extra_properties(stream)
        if stream == "deals":
            props += self.pipelines().entered_properties()
        if stream == LEAD_STREAM:
            props += sorted(set(self.lead_stages().entered.values()))
        return props

    def lead_stages(self) -> LeadStages:
        """The portal's lead stages (labels from the lead pipelines) and, from its lead properties, the property
        holding when a lead entered each converted stage (``mapping.entered_property``): two calls, once per
        connector. A converted stage without such a property gives converted leads no conversion date: said once."""
        if self._lead_stages is None:
            answer = self._call("properties", partial(self._properties_api.get_all_with_http_info, LEAD_STREAM))
            names = {prop.name for prop in answer.results}
            pipelines = self._call("pipelines", lambda: self._pipelines_api.get_all_with_http_info(LEAD_STREAM))
            labels = {stage.id: stage.label for pipeline in pipelines.results for stage in pipeline.stages}
            converted = frozenset(self.config.lead_converted_stages)
            unknown = sorted(converted - set(labels))
            if unknown:
                raise ConfigurationError(
                    f"HubSpot's lead pipelines have no stage {', '.join(unknown)} — check "
                    f"OKRSYNC_HUBSPOT__LEAD_CONVERTED_STAGES (stage ids: {', '.join(sorted(labels)) or 'none'})"
                )
            entered = {stage: found for stage in converted if (found := mapping.entered_property(stage, names))}
            for stage in sorted(converted - set(entered)):
                log.warning(
                    "HubSpot lists no 'date entered' property of lead stage %s: its converted leads have no"
                    " conversion date, so counts by converted_on miss them",
                    stage,
                )
            self._lead_stages = LeadStages(labels=labels, converted=converted, entered=entered)
        return self._lead_stages

    def pages(self, stream: str, *, since: datetime | None) -> Iterator[Page]:
        """Yield mapped pages of ``stream`` (all when ``since`` is None: list API; else search from ``since``)."""
        if stream == "owners":
            yield from self._owner_pages()
            return
        if stream == LEAD_STREAM:
            if self.config.leads != "object":
                return
            # asked again every run: a connector kept by the worker gets the object back once the scope is granted
            self._lead_object = True
            try:
                self.lead_stages()
            except (AuthenticationError, FatalError) as exc:
                if getattr(exc, "http_status", None) not in (403, 404):
                    raise
                log.warning(
                    "HubSpot does not let okrsync read the leads object (%s): this run reads leads from contacts by"
                    " lifecycle stage. Add scope crm.objects.leads.read to the private app (Sales Hub Professional or"
                    " Enterprise), or set OKRSYNC_HUBSPOT__LEADS=lifecycle",
                    str(exc)[:160],
                )
                self._lead_object = False
                return
        started = self._cursor_limit()
        batch: list[HubSpotRow] = []
        props = self._properties(stream)  # here, not in the prefetch thread: it may call (pipelines, properties)
        inline = () if stream in mapping.NOT_INLINE else mapping.ASSOCIATIONS.get(stream, ())
        source = (
            self._list_rows(stream, props=props, associations=inline)
            if since is None
            else self._search_rows(stream, since, props=props)
        )
        for rows in _prefetched(source, depth=PREFETCH_PAGES, name=f"hubspot-{stream}-pages"):
            batch.extend(rows)
            if len(batch) >= ASSOC_BATCH:
                page = self._resolve(stream, batch[:ASSOC_BATCH], list_mode=since is None)
                page.began_at = started
                yield page
                batch = batch[ASSOC_BATCH:]
        page = self._resolve(stream, batch, list_mode=since is None)
        page.began_at = started
        if since is None:
            # the listing is ordered by id, not by time: only its end may set the cursor, to the start of the
            # listing, so that whatever changed while listing is read again by the next (search) run
            page.cursor = (started, "")
        yield page

    def _row(self, stream: str, obj: dict[str, Any]) -> HubSpotRow:
        return HubSpotRow(
            object_type=stream,
            id=str(obj["id"]),
            properties=dict(obj.get("properties") or {}),
            created_at=mapping.parse_timestamp(obj.get("createdAt")),
            updated_at=mapping.parse_timestamp(obj.get("updatedAt")),
            archived=bool(obj.get("archived")),
        )

    def _list_rows(
        self,
        stream: str,
        *,
        archived: bool = False,
        props: list[str] | None = None,
        associations: tuple[str, ...] = (),
    ) -> Iterator[list[HubSpotRow]]:
        """The listing of ``stream`` page by page (100 records a call, in id order). ``associations``: the types to
        read inline with each page; a record's inline list that is complete is linked here, one that goes on past
        the first 100 entries is left to ``_resolve`` (v4 batch read)."""
        if props is None:
            props = self._properties(stream) if not archived else [mapping.MODIFIED[stream]]
        after: str | None = None
        while True:
            options: dict[str, Any] = {"limit": LIST_LIMIT, "after": after, "properties": props, "archived": archived}
            if associations:
                options["associations"] = list(associations)
            answer = self._call("list", _json(self._basic.get_page_with_http_info, stream, **options))
            results = answer.get("results") or []
            rows = [self._row(stream, obj) for obj in results]
            for row, obj in zip(rows, results, strict=True):
                if archived:
                    row.properties["archivedAt"] = obj.get("archivedAt")
                if associations:
                    _link_inline(row, obj.get("associations") or {}, associations)
            yield rows
            after = _next_after(answer)
            if not after:
                return

    def _search_rows(self, stream: str, since: datetime, *, props: list[str]) -> Iterator[list[HubSpotRow]]:
        """Every record of ``stream`` stamped at or after ``since``, by keyset paging: never an ``after`` offset.

        HubSpot's search pages by offset over the records as they are at each request
        (https://developers.hubspot.com/docs/guides/api/crm/search): a record that changes while we page moves
        from its slot to the end, the ones behind it move up a slot, and the record at the next page boundary is
        never returned. So each request starts from the first page of a window (``after`` 0) that begins at the
        last timestamp read: a record that changes meanwhile gets a stamp inside the window still to be read.
        The search takes one sort only, and ties are in no documented order: records at the last timestamp of a
        full page are not kept but read again as the first ones of the next window (``GTE``); when a single
        timestamp fills a page (bulk updates), that timestamp is read by ``hs_object_id`` (``EQ`` stamp,
        ``GT`` last id, sorted by id), then the window goes on strictly after it. No query pages past its first
        page, so the 10,000-result cap is never reached, and each record is read once per run (plus one page per
        bulk timestamp)."""
        prop = mapping.MODIFIED[stream]
        window, op = since, "GTE"
        same_stamp: datetime | None = None  # set while reading one timestamp's records by id
        last_id = "0"
        while True:
            if same_stamp is None:
                filters = [{"propertyName": prop, "operator": op, "value": str(_ms(window))}]
                sorts = [{"propertyName": prop, "direction": "ASCENDING"}]
            else:
                filters = [
                    {"propertyName": prop, "operator": "EQ", "value": str(_ms(same_stamp))},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": last_id},
                ]
                sorts = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
            body = {
                "filterGroups": [{"filters": filters}],
                "sorts": sorts,
                "properties": props,
                "limit": SEARCH_LIMIT,
                "after": "0",
            }
            answer = self._call("search", _json(self._search.do_search_with_http_info, stream, body), search=True)
            rows = [self._row(stream, obj) for obj in answer.get("results") or []]
            more = bool(_next_after(answer)) and bool(rows)
            if same_stamp is not None:
                if rows:
                    yield rows
                if more:  # still more at this timestamp: go on after the last id
                    last_id = rows[-1].id
                    continue
                window, op, same_stamp = same_stamp, "GT", None
                continue
            if not more:
                if rows:
                    yield rows
                return
            stamps = [mapping.parse_timestamp(row.properties.get(prop)) for row in rows]
            last = stamps[-1]
            assert last is not None
            if stamps[0] == last:  # one timestamp fills the page: read it by id
                same_stamp, last_id = last, "0"
                continue
            # the records at the page's last timestamp may go on in the next page: read them there
            yield [row for row, stamp in zip(rows, stamps, strict=True) if stamp != last]
            window, op = last, "GTE"

    def _resolve(self, stream: str, rows: list[HubSpotRow], *, list_mode: bool) -> Page:
        page = Page()
        for to_type in mapping.ASSOCIATIONS.get(stream, ()):
            # rows a list page linked inline need no call; the rest (search, fetch, long inline lists) are read here
            unlinked = [row for row in rows if to_type not in row.associations]
            if not unlinked:
                continue
            links = self.associations(stream, to_type, [r.id for r in unlinked])
            for row in unlinked:
                row.link(to_type, links.get(row.id, []))
        pipelines = self.pipelines() if stream == "deals" else Pipelines()
        for row in rows:
            try:
                if stream == LEAD_STREAM:
                    page.records.append(mapping.lead_record(row, self.lead_stages()))
                    continue
                record = mapping.to_record(row, pipelines)
                if stream == "deals" and self.config.close_date_pushes_property:
                    pushes = mapping.push_count(row.properties.get(self.config.close_date_pushes_property))
                    record = record.model_copy(update={"close_date_pushes": pushes})
                page.records.append(record)
                if stream == "deals":
                    page.records.extend(mapping.deal_contacts(row, record.modified_at))
                if stream == "contacts" and isinstance(record, Contact) and not self._lead_object:
                    lead = mapping.contact_lead(row, record)
                    page.records.extend([lead] if lead else [])
            except SkippableError as exc:
                log.warning("skipped %s", exc)
                page.skipped.append(SkippedRecord(external_id=row.id, reason=str(exc), raw=row.raw()))
        if rows and not list_mode:
            last = rows[-1]
            stamp = mapping.parse_timestamp(last.properties.get(mapping.MODIFIED[stream]))
            if stamp:
                limit = self._cursor_limit()
                # a stamp in the future (a bad import, a wrong clock) is read again by every run, not made the cursor
                page.cursor = (stamp, last.id) if stamp <= limit else (limit, "")
        return page

    def fetch(self, stream: str, ids: list[str]) -> tuple[Page, list[Deletion]]:
        """The records ``ids`` of ``stream`` as they are now, with their associations (batch read, 100 per call):
        a webhook's targeted refresh. Ids the portal no longer lists (archived, merged away) come back as
        deletions. Owners have no batch read (nor a webhook that names one): an incremental sync reads them."""
        fetchable = (*mapping.OBJECT_STREAMS, LEAD_STREAM) if self._lead_object else mapping.OBJECT_STREAMS
        if stream not in fetchable:
            raise ValueError(f"HubSpot {stream!r} records cannot be fetched by id; fetch one of {', '.join(fetchable)}")
        props = self._properties(stream)
        rows: list[HubSpotRow] = []
        unique = sorted(set(ids))
        for start in range(0, len(unique), BATCH_READ_LIMIT):
            body = {"inputs": [{"id": i} for i in unique[start : start + BATCH_READ_LIMIT]], "properties": props}
            answer = self._call(
                "batch_read", _json(self._objects_batch.read_with_http_info, stream, body, archived=False)
            )
            rows += [self._row(stream, obj) for obj in answer.get("results") or []]
        found = {row.id for row in rows}
        page = self._resolve(stream, rows, list_mode=True)  # no cursor: a targeted read must not move it
        return page, [Deletion(external_id=i, deleted_at=None) for i in unique if i not in found]

    def linked(self, stream: str, ids: list[str]) -> dict[str, set[str]]:
        """The records that hold links to ``ids`` of ``stream`` (stream → ids), read from ``stream``'s side of the
        v4 associations: after a restore, whose records' links okrsync dropped when ``ids`` were archived (HubSpot
        re-stamps none of them, so no incremental search returns them)."""
        found: dict[str, set[str]] = {}
        for owner, to_types in mapping.ASSOCIATIONS.items():
            if owner == LEAD_STREAM and not self._lead_object:
                continue
            if stream in to_types and ids:
                links = self.associations(stream, owner, sorted(set(ids)))
                ids_there = {link.to_id for linked in links.values() for link in linked}
                if ids_there:
                    found[owner] = ids_there
        return found

    def associations(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[mapping.Link]]:
        """from id → its associations (id and association types), through v4 batch reads of up to 1,000 ids
        (per-record paging followed)."""
        found: dict[str, list[mapping.Link]] = {}
        for start in range(0, len(ids), ASSOC_BATCH):
            chunk = ids[start : start + ASSOC_BATCH]
            body = {"inputs": [{"id": i} for i in chunk]}
            answer = self._call(
                "assoc_batch_read", _json(self._assoc_batch.get_page_with_http_info, from_type, to_type, body)
            )
            for result in answer.get("results") or []:
                from_id = str(result["from"]["id"])
                found[from_id] = [_link(t) for t in result.get("to") or []]
                after = _next_after(result)
                while after:
                    more = self._call(
                        "assoc_list",
                        _json(
                            self._assoc_basic.get_page_with_http_info,
                            from_type,
                            from_id,
                            to_type,
                            after=after,
                            limit=500,
                        ),
                    )
                    found[from_id] += [_link(t) for t in more.get("results") or []]
                    after = _next_after(more)
        return found

    def deleted(self, stream: str, *, start: datetime, end: datetime) -> DeletedWindow:
        """Archived records of ``stream`` (the archived listing; deletion webhooks arrive in a later issue). Owners:
        none, archived owners are deactivated users that ``pages()`` lists and keeps."""
        if stream == "owners" or (stream == LEAD_STREAM and not self._lead_object):
            return DeletedWindow(deletions=[], latest_covered=end)  # leads: the portal refused the object this run
        deletions = [
            Deletion(external_id=row.id, deleted_at=mapping.parse_timestamp(row.properties.get("archivedAt")))
            for rows in self._list_rows(stream, archived=True)
            for row in rows
        ]
        return DeletedWindow(deletions=deletions, latest_covered=end)


def _link(item: dict[str, Any]) -> mapping.Link:
    types = frozenset(
        (str(t.get("category")), int(t["typeId"]))
        for t in item.get("associationTypes") or []
        if t.get("typeId") is not None
    )
    return mapping.Link(to_id=str(item["toObjectId"]), types=types)


def _link_inline(row: HubSpotRow, inline: dict[str, Any], to_types: tuple[str, ...]) -> None:
    """Link ``row`` from the associations its list page carried. HubSpot leaves out a type the record has no
    associations of, and pages each type's list at 100 entries ("if your request returns more than 100 associations,
    you will need to use the value of the after field": https://developers.hubspot.com/changelog/announcing-a-change-to-how-v3-crm-apis-return-association-data);
    a list with a next page is left unlinked, for ``_resolve`` to read whole through the v4 batch read."""
    primary = mapping.INLINE_PRIMARY_COMPANY_TYPE.get(row.object_type)
    for to_type in to_types:
        listed = inline.get(to_type)
        if listed is None:
            row.link(to_type, [])
            continue
        if _next_after(listed):
            continue
        types: dict[str, set[tuple[str, int]]] = {}  # one entry per type of a link: one Link per associated id
        for entry in listed.get("results") or []:
            marks = types.setdefault(str(entry["id"]), set())
            if to_type == "companies" and primary is not None and entry.get("type") == primary:
                marks.add(("HUBSPOT_DEFINED", mapping.PRIMARY_COMPANY_TYPE[row.object_type]))
        row.link(to_type, [mapping.Link(to_id=to_id, types=frozenset(marks)) for to_id, marks in types.items()])


def _next_after(answer: dict[str, Any]) -> str | None:
    after = ((answer.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after else None


def _json(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], tuple[dict[str, Any], int, Any]]:
    """A call of a generated ``*_with_http_info`` method whose answer is read as plain JSON: with
    ``_preload_content=False`` the client returns the urllib3 response instead of deserialising it into models.
    Refusals still raise the client's ApiException (status, headers, body) before a response is returned, and the
    body is read inside the call, so a connection cut mid-body is a urllib3 error there, as with preloading."""

    def call() -> tuple[dict[str, Any], int, Any]:
        response = method(*args, _preload_content=False, **kwargs)
        try:
            return json.loads(response.data or b"{}"), int(response.status), response.headers
        finally:
            response.release_conn()  # back to the pool: the client does this only when it preloads

    return call


_END = object()


def _prefetched(source: Iterator[T], *, depth: int, name: str) -> Iterator[T]:
    """``source``'s items, produced in a background thread up to ``depth`` items ahead of the consumer, so that the
    next API page is fetched while the caller stores the current one. Whatever ``source`` raises is raised here, in
    the caller's thread, as the same exception. When the caller stops early (an error, ``close()``), the thread is
    told to stop, ``source`` is closed there, and the thread is joined before this generator ends."""
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # noqa: BLE001  # handed to the caller's thread, which raises it
            put((False, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            ok, item = handoff.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _required_scopes(body: dict[str, Any]) -> list[str]:
    scopes: list[str] = []
    for error in body.get("errors") or []:
        context = error.get("context") or {}
        for key in ("requiredGranularScopes", "requiredScopes"):
            scopes += [str(s) for s in context.get(key) or []]
    return scopes
