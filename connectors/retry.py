"""The one retry policy of every connector: exponential backoff with jitter on ``RetriableError`` (tenacity), at
least as long as the server's ``Retry-After`` (``RetriableError.retry_after``, honoured up to ``RETRY_AFTER_MAX``
seconds), and a clear ``UnreachableError`` once the attempts are spent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from connectors.errors import RetriableError, UnreachableError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W")
# a server asking for a longer pause than this gets this long: a sync waiting minutes on one call is worse than
# giving up and resuming on the next run
RETRY_AFTER_MAX = 120.0


def retry_after_seconds(headers: Mapping[str, Any] | None, *, now: datetime | None = None) -> float | None:
    """The ``Retry-After`` of an answer (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) in seconds, or None."""
    value = str(headers.get("Retry-After") or headers.get("retry-after") or "").strip() if headers else ""
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _wait(wait_base: float, wait_max: float) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter, but never shorter than the server's Retry-After (capped)."""
    backoff = wait_random_exponential(multiplier=wait_base, max=wait_max)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None)
        return max(backoff(state), min(float(asked), RETRY_AFTER_MAX)) if asked else backoff(state)

    return wait


def call_with_retries(
    attempt: Callable[[], T],
    *,
    crm: str,
    name: str,
    max_attempts: int,
    wait_base: float,
    wait_max: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` until it returns, retrying only ``RetriableError``; other errors pass through at once."""
    retrying = Retrying(
        retry=retry_if_exception_type(RetriableError),
        wait=_wait(wait_base, wait_max),
        sleep=sleep,
        stop=stop_after_attempt(max_attempts),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "%s %s failed (%s), attempt %d of %d; retrying",
            crm,
            name,
            state.outcome.exception() if state.outcome else "?",
            state.attempt_number,
            max_attempts,
        ),
    )
    try:
        for each in retrying:
            with each:
                return attempt()
    except RetriableError as exc:
        raise UnreachableError(f"{crm} {name} still failing after {max_attempts} attempts: {exc}") from None
    raise AssertionError("unreachable")  # pragma: no cover


class _RecordsToRetry(Exception):
    """Raised inside the tenacity loop to send the transiently failed records again."""


def retry_failed_records(
    requests: Sequence[R],
    send: Callable[[list[R]], list[W]],
    *,
    key: Callable[[R], str],
    crm: str,
    max_attempts: int,
    wait_base: float,
    wait_max: float,
) -> list[W]:
    """Send ``requests``; then send again, with backoff, only the records whose result says ``retriable`` (a
    locked row, a busy server), until they land or the attempts are spent. Returns the last result per request,
    in request order. The records that landed are never sent twice."""
    final: dict[str, W] = {}
    pending = list(requests)
    retrying = Retrying(
        retry=retry_if_exception_type(_RecordsToRetry),
        wait=wait_random_exponential(multiplier=wait_base, max=wait_max),
        stop=stop_after_attempt(max_attempts),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            results = send(pending)
            # W is an unbounded TypeVar, so mypy does not know that a result has key, ok and retriable
            final.update({result.key: result for result in results})  # type: ignore[attr-defined]
            again = {result.key for result in results if not result.ok and result.retriable}  # type: ignore[attr-defined]
            pending = [request for request in pending if key(request) in again]
            if pending and attempt.retry_state.attempt_number < max_attempts:
                log.warning("%s: %d record(s) failed transiently; sending them again", crm, len(pending))
                raise _RecordsToRetry()
    return [final[key(request)] for request in requests]
