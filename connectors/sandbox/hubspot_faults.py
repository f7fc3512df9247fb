"""Faults and rate limits of the sandbox HubSpot portal: the fault kinds a test can plan (HubSpotFaultPlan) and the
private-app request limits the API enforces (RateLimiter, answered with 429 RATE_LIMIT by ``hubspot_api._serve``:
https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from connectors.sandbox.faults import Fault, FaultPlan

FAULT_KINDS = ("latency", "http", "drop", "rate_limit", "input_error")


class HubSpotFaultPlan(FaultPlan):
    """FaultPlan with the HubSpot kinds and their parameters:

    - ``latency`` (seconds), ``drop``: as for Salesforce. A drop on a write applies the write, then cuts the
      connection mid-body, so the client sees an error for a write that landed (replay safety).
    - ``http`` (status, body?/message?/category?): answer with that status before the handler runs (nothing applied).
    - ``rate_limit`` (policy: "TEN_SECONDLY_ROLLING" default, "DAILY" or "SECONDLY"): a 429 in HubSpot's shape.
    - ``input_error`` (index or id, category?, message?): one input of a batch write (batch_upsert, batch_update,
      associations_write) fails alone, answered with 207 and ``{"status": "error", "category" (default
      VALIDATION_ERROR), "message", "context": {"ids": [id]}}`` while the other inputs land. ``index`` is the
      input's position (0-based), ``id`` its key: the idProperty value of an upsert, the record id of an update,
      the from-object id of an association. It counts inputs, not calls: ``after`` matching inputs pass first,
      then ``times`` matching inputs fail (so ``times=1`` fails one attempt and lets the retry through).

    ``match`` is a call name: "list", "get", "search", "batch_read", "assoc_batch_read", "assoc_list", "owners",
    "pipelines", "properties", "schemas", "batch_upsert", "batch_update", "batch_archive", "associations_write".
    """

    kinds = FAULT_KINDS

    def __init__(self) -> None:
        super().__init__()
        # kept apart from the base plan's faults, which count calls (take) rather than inputs (take_input)
        self._input_faults: list[Fault] = []
        self._input_lock = threading.Lock()

    def add(self, kind: str, *, times: int = 1, after: int = 0, match: str | None = None, **params: Any) -> Fault:
        """Plan a fault (kinds and parameters above) and return it."""
        if kind != "input_error":
            return super().add(kind, times=times, after=after, match=match, **params)
        if "index" not in params and "id" not in params:
            raise ValueError("fault 'input_error' needs parameter index or id")
        fault = Fault(kind, times=times, after=after, match=match, params=params)
        with self._input_lock:
            self._input_faults.append(fault)
        return fault

    def take_input(self, call: str, *, index: int, key: str) -> Fault | None:
        """Count one input of a batch write against each matching input_error fault; return the first that fires."""
        with self._input_lock:
            for fault in self._input_faults:
                if fault.match is not None and fault.match != call:
                    continue
                if "index" in fault.params and int(fault.params["index"]) != index:
                    continue
                if "id" in fault.params and str(fault.params["id"]) != key:
                    continue
                fault.seen += 1
                if fault.seen > fault.after and fault.fired < fault.times:
                    fault.fired += 1
                    return fault
        return None

    def clear(self) -> None:
        """Remove every planned fault."""
        super().clear()
        with self._input_lock:
            self._input_faults.clear()

    def __len__(self) -> int:
        with self._input_lock:
            return super().__len__() + len(self._input_faults)

    def __iter__(self) -> Iterator[Fault]:
        with self._input_lock:
            return iter([*super().__iter__(), *self._input_faults])


class RateLimiter:
    """Private-app limits: `burst_limit` requests per rolling 10 s, `daily_limit` per day, and the search
    API's own `search_per_second`. Rejected requests do not use up the allowance."""

    interval_ms = 10_000

    def __init__(
        self, *, burst_limit: int, daily_limit: int, search_per_second: int, clock: Callable[[], float]
    ) -> None:
        self.burst_limit, self.daily_limit, self.search_per_second = burst_limit, daily_limit, search_per_second
        self.clock = clock
        self.daily_used = 0
        self._burst: deque[float] = deque()
        self._search: deque[float] = deque()

    def _trim(self, window: deque[float], seconds: float, now: float) -> None:
        while window and window[0] <= now - seconds:
            window.popleft()

    def admit(self, *, search: bool) -> str | None:
        """Count one request; return the policy name it violates (and is refused for), or None."""
        now = self.clock()
        self._trim(self._burst, self.interval_ms / 1000, now)
        self._trim(self._search, 1.0, now)
        if self.daily_used >= self.daily_limit:
            return "DAILY"
        if search:
            if len(self._search) >= self.search_per_second:
                return "SECONDLY"
            self._search.append(now)
        else:
            if len(self._burst) >= self.burst_limit:
                return "TEN_SECONDLY_ROLLING"
            self._burst.append(now)
        self.daily_used += 1
        return None

    def headers(self) -> dict[str, str]:
        """The X-HubSpot-RateLimit-* headers as of now."""
        self._trim(self._burst, self.interval_ms / 1000, self.clock())
        return {
            "X-HubSpot-RateLimit-Max": str(self.burst_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(self.burst_limit - len(self._burst), 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.interval_ms),
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self.daily_used, 0)),
        }
