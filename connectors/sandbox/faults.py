"""Fault injection for the sandbox org: planned failures that tests switch on per API call name.

Kinds and their parameters:

- ``latency`` (seconds, after_handler?): delay the response; it still succeeds. With ``after_handler`` the call is
  served first and only the answer is late (a write is applied while the client still waits).
- ``http`` (status, error_code, message): answer with a Salesforce error body ``[{"message", "errorCode"}]``.
- ``expire_session``: revoke every token at that moment; that call and later ones get 401 INVALID_SESSION_ID.
- ``drop``: send the response head with a Content-Length, part of the body, then close the connection. The
  request has been served by then: a dropped write is applied (a lost response, for replay tests).
- ``mutate`` (sobject, count): while serving the call, change `count` records of `sobject`.
- ``change`` (action): while serving the call, before its answer is built, run ``action(org)``: any write a user
  or another integration makes meanwhile, e.g. between two pages of a query (the query's locator keeps serving the
  rows as they were when it was opened).
- ``record_error`` (error_code, message?, and index or external_id): one record of a write fails with that
  statusCode while the rest of the request succeeds. ``index`` is the record's position in the request (0-based;
  the row number in a Bulk CSV), ``external_id`` the value of its upsert key or its record id. It counts records,
  not calls: ``after`` matching records pass first, then ``times`` matching records fail (UNABLE_TO_LOCK_ROW once,
  then the retry succeeds). Under allOrNone the failure rolls the request back like any other.

``match`` is a call name ("query", "queryAll", "query_more", "getDeleted", "getUpdated", "limits", "describe",
"composite_upsert", "composite_update", "composite_delete", "bulk2_ingest") or None for any /services/data call;
``after`` matching calls pass first, then ``times`` matching calls get the fault.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

KINDS = ("latency", "http", "expire_session", "drop", "mutate", "change", "record_error")
_REQUIRED = {
    "latency": ("seconds",),
    "http": ("status",),
    "mutate": ("sobject", "count"),
    "change": ("action",),
    "record_error": ("error_code",),
}
RECORD_ERROR_MESSAGES = {
    "UNABLE_TO_LOCK_ROW": "unable to obtain exclusive access to this record or 1 records: {id}",
    "REQUEST_RUNNING_TOO_LONG": "Your request was running for too long, and has been stopped.",
}
_DEFAULT_CODES = {
    400: ("MALFORMED_QUERY", "Bad request"),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests."),
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred."),
    503: ("SERVER_UNAVAILABLE", "Server unavailable, please try again later."),
}


@dataclass
class Fault:
    """One planned fault and how often it has matched and fired so far."""

    kind: str
    times: int = 1
    after: int = 0
    match: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    fired: int = 0

    def record_error(self, record_id: str | None) -> dict[str, Any]:
        """The per-record error of a ``record_error`` fault, in sObject Collections shape."""
        code = str(self.params["error_code"])
        default = RECORD_ERROR_MESSAGES.get(code, f"sandbox fault: {code}").format(id=record_id or "")
        return {"statusCode": code, "message": str(self.params.get("message", default)), "fields": []}

    @property
    def error_body(self) -> list[dict[str, str]]:
        """The Salesforce error body of an ``http`` fault."""
        code, message = _DEFAULT_CODES.get(int(self.params["status"]), ("UNKNOWN_EXCEPTION", "Error"))
        return [{"message": self.params.get("message", message), "errorCode": self.params.get("error_code", code)}]


class FaultPlan:
    """The faults planned for an org; thread-safe."""

    kinds: tuple[str, ...] = KINDS  # a subclass may allow other kinds (the HubSpot portal adds "rate_limit")

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, kind: str, *, times: int = 1, after: int = 0, match: str | None = None, **params: Any) -> Fault:
        """Plan a fault (see the module docstring for kinds and parameters) and return it."""
        if kind not in self.kinds:
            raise ValueError(f"unknown fault kind '{kind}'; use one of {', '.join(self.kinds)}")
        missing = [name for name in _REQUIRED.get(kind, ()) if name not in params]
        if missing:
            raise ValueError(f"fault '{kind}' needs parameter(s) {', '.join(missing)}")
        if kind == "record_error" and ("index" in params) == ("external_id" in params):
            raise ValueError("fault 'record_error' needs exactly one of the parameters index or external_id")
        fault = Fault(kind, times=times, after=after, match=match, params=params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every planned fault."""
        with self._lock:
            self._faults.clear()

    def summary(self) -> list[dict[str, Any]]:
        """Each planned fault with how often it fired (for the control API's stats)."""
        with self._lock:
            return [{"kind": f.kind, "match": f.match, "times": f.times, "fired": f.fired} for f in self._faults]

    def take(self, call: str) -> list[Fault]:
        """Count one call named `call` against each matching fault and return the faults that fire now
        (record_error faults are counted per record by :meth:`take_record` instead)."""
        firing = []
        with self._lock:
            for fault in self._faults:
                if fault.kind == "record_error" or (fault.match is not None and fault.match != call):
                    continue
                fault.seen += 1
                if fault.seen > fault.after and fault.fired < fault.times:
                    fault.fired += 1
                    firing.append(fault)
        return firing

    def take_record(self, call: str, *, index: int, key: str | None) -> Fault | None:
        """Count one record of a write (its position and upsert key or id) against each matching record_error
        fault and return the first that fires now, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.kind != "record_error" or (fault.match is not None and fault.match != call):
                    continue
                if "index" in fault.params and int(fault.params["index"]) != index:
                    continue
                if "external_id" in fault.params and (key is None or str(fault.params["external_id"]) != key):
                    continue
                fault.seen += 1
                if fault.seen > fault.after and fault.fired < fault.times:
                    fault.fired += 1
                    return fault
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter(list(self._faults))
