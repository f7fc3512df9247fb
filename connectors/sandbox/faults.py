"""Fault injection for the sandbox org: planned failures that tests switch on per API call name.

Kinds and their parameters:

- ``latency`` (seconds): delay the response; it still succeeds.
- ``http`` (status, error_code, message): answer with a Salesforce error body ``[{"message", "errorCode"}]``.
- ``expire_session``: revoke every token at that moment; that call and later ones get 401 INVALID_SESSION_ID.
- ``drop``: send the response head with a Content-Length, part of the body, then close the connection.
- ``mutate`` (sobject, count): while serving the call, change `count` records of `sobject`.

``match`` is a call name ("query", "queryAll", "query_more", "getDeleted", "getUpdated", "limits", "describe")
or None for any /services/data call; ``after`` matching calls pass first, then ``times`` matching calls get the
fault.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

KINDS = ("latency", "http", "expire_session", "drop", "mutate")
_REQUIRED = {"latency": ("seconds",), "http": ("status",), "mutate": ("sobject", "count")}
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
        fault = Fault(kind, times=times, after=after, match=match, params=params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every planned fault."""
        with self._lock:
            self._faults.clear()

    def take(self, call: str) -> list[Fault]:
        """Count one call named `call` against each matching fault and return the faults that fire now."""
        firing = []
        with self._lock:
            for fault in self._faults:
                if fault.match is not None and fault.match != call:
                    continue
                fault.seen += 1
                if fault.seen > fault.after and fault.fired < fault.times:
                    fault.fired += 1
                    firing.append(fault)
        return firing

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter(list(self._faults))
