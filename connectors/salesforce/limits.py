"""What Salesforce's answers say about its limits and its clock, read from every HTTP response.

- ``Sforce-Limit-Info: api-usage=used/limit`` is on error answers too; simple-salesforce only reads it from
  successful ones, so a refusal would otherwise be reported with the usage of the call before.
- ``Date`` is the org's clock (whole seconds). A cursor never moves past it, and the time a query began is taken
  from it, so neither depends on the local clock.
- 403 ``REQUEST_LIMIT_EXCEEDED`` covers two different limits
  (https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html):
  the daily allocation ("TotalRequests Limit exceeded"), final until the allowance renews, and the concurrent
  long-running request limit ("ConcurrentPerOrgLongTxn Limit exceeded", also "ConcurrentRequests ..."), which lifts
  as soon as fewer than 25 requests of 20 s or longer are running: that one is retried with backoff.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from simple_salesforce import Salesforce

from connectors.errors import ApiLimitError, AuthenticationError, ConnectorError, RetriableError

log = logging.getLogger(__name__)

# Date has whole seconds, and a server may refresh it only once a second: what it says can be up to this much
# behind the org's clock (the sandbox's HTTP server does the same).
DATE_SLACK = timedelta(seconds=2)
DAILY_LIMIT_MARK = "TotalRequests"
CONCURRENT_LIMIT_MARK = "Concurrent"


@dataclass
class OrgAnswers:
    """The latest ``Date`` and ``Sforce-Limit-Info`` the org sent; register :meth:`observe` as a response hook."""

    server_date: datetime | None = None
    server_date_at: float = 0.0  # time.monotonic() when that answer arrived
    usage: tuple[int, int] | None = None

    def observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        date = response.headers.get("Date")
        if date:
            try:
                self.server_date = parsedate_to_datetime(date).astimezone(UTC)
                self.server_date_at = time.monotonic()
            except (TypeError, ValueError):
                pass
        info = response.headers.get("Sforce-Limit-Info")
        if info:
            usage = Salesforce.parse_api_usage(info).get("api-usage")
            if usage is not None:
                self.usage = (usage.used, usage.total)

    def server_time_at(self, moment: float) -> datetime | None:
        """The org's time at ``moment`` (a time.monotonic() value), never later than it really was: ``Date`` is
        rounded down to the second and the time in flight is counted back."""
        if self.server_date is None:
            return None
        return self.server_date - timedelta(seconds=max(self.server_date_at - moment, 0.0))


def refusal(name: str, code: str, message: str, usage: tuple[int, int] | None) -> ConnectorError:
    """The error for a 403 answer to the call ``name``: which limit it is decides whether the sync retries (the
    concurrent limit, or a limit Salesforce does not name while the daily usage is below the allocation), stops
    for the day (the daily allocation) or stops for a person to act (anything else, e.g. missing access)."""
    used, limit = usage or (None, None)
    usage_text = f"used {used} of {limit}" if usage else "usage unknown"
    text = message.strip()
    if code != "REQUEST_LIMIT_EXCEEDED":
        log.error("Salesforce refused %s: %s %s", name, code, text)
        return AuthenticationError(f"Salesforce refused {name}: {code} {text}")
    daily = DAILY_LIMIT_MARK in text or (
        CONCURRENT_LIMIT_MARK not in text and used is not None and limit is not None and used >= limit
    )
    if daily:
        return ApiLimitError(
            f"Salesforce refused {name}: daily API request limit exceeded ({usage_text}); the sync stopped and"
            " resumes where it left off once the allowance renews",
            used=used,
            limit=limit,
        )
    if CONCURRENT_LIMIT_MARK in text:
        log.warning(
            "Salesforce refused %s: too many long-running requests in the org at once (%s, daily %s); retrying",
            name,
            text,
            usage_text,
        )
        return RetriableError(f"Salesforce refused {name}: concurrent long-running request limit ({text})")
    log.warning(
        "Salesforce refused %s with REQUEST_LIMIT_EXCEEDED %r, a limit other than the daily allocation (%s); retrying",
        name,
        text,
        usage_text,
    )
    return RetriableError(f"Salesforce refused {name}: REQUEST_LIMIT_EXCEEDED {text!r} (daily {usage_text})")
