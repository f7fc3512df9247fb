"""The one retry policy of every connector: exponential backoff with jitter on ``RetriableError`` (tenacity), and
a clear ``UnreachableError`` once the attempts are spent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from connectors.errors import RetriableError, UnreachableError

log = logging.getLogger(__name__)
T = TypeVar("T")


def call_with_retries(
    attempt: Callable[[], T], *, crm: str, name: str, max_attempts: int, wait_base: float, wait_max: float
) -> T:
    """Run ``attempt`` until it returns, retrying only ``RetriableError``; other errors pass through at once."""
    retrying = Retrying(
        retry=retry_if_exception_type(RetriableError),
        wait=wait_random_exponential(multiplier=wait_base, max=wait_max),
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
