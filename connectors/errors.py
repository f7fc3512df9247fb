"""Errors raised by connectors, grouped by what the caller should do next.

    ConnectorError                  root of everything a connector raises
    ├── RetriableError              try the same call again later (429, 5xx, lock contention, timeout, dropped link)
    ├── FatalError                  stop the sync; a person must act (the message says what to do)
    │   ├── AuthenticationError     wrong credentials, expired token that cannot be renewed
    │   ├── ConfigurationError      a field, object or setting the CRM does not know
    │   ├── UnreachableError        the instance does not answer (after retries)
    │   └── ApiLimitError           daily API allowance exhausted or the configured share of it reached
    └── SkippableError              one record cannot be mapped; log it by id and go on

Retry decisions are made in exactly one place per connector (its ``_call`` wrapper).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ConnectorError(Exception):
    """Root error of the connectors package."""


class RetriableError(ConnectorError):
    """A transient failure: the same call may succeed when repeated. ``retry_after``: the seconds the server asked
    to wait first (an HTTP ``Retry-After``), which the retry policy honours (``connectors.retry``)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """The sync cannot go on until someone changes something."""


class AuthenticationError(FatalError):
    pass


class ConfigurationError(FatalError):
    pass


class UnreachableError(FatalError):
    pass


class ApiLimitError(FatalError):
    """The CRM's API allowance (or the share of it okrsync may use) is spent."""

    def __init__(self, message: str, *, used: int | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.used = used
        self.limit = limit


class SkippableError(ConnectorError):
    """One record is malformed; the rest of the page is fine."""


def skipped(name: str, record_id: Any, exc: Exception) -> SkippableError:
    """The error that skips a row that cannot be mapped, naming its object, its id and each problem (a validation
    error's fields and messages)."""
    if isinstance(exc, ValidationError):
        problem = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
    else:
        problem = str(exc)
    return SkippableError(f"{name} {record_id or '<no Id>'}: {problem}")
