"""Team chat notifications: the weekly check-in summary and key results changing status, posted to Slack and
Microsoft Teams incoming webhooks.

Messages go out with httpx from a small background pool, so the sidecar never waits for a chat service; 5xx, 429
and network errors are retried with backoff (tenacity), other answers are logged and dropped. An incoming-webhook
URL is a secret (whoever has it can post): it is held as ``SecretStr`` and logs name only its host.

Formats: Slack ``{"text", "blocks": [section…]}`` (https://api.slack.com/messaging/webhooks); Teams a message with
one Adaptive Card attachment (``application/vnd.microsoft.card.adaptive``), as Teams workflows and connectors take.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlmodel
from pydantic import SecretStr
from sqlmodel import col
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from service.compute.models import KeyResultHistory
from service.notifications.settings import NotificationSettings

log = logging.getLogger(__name__)
STATUS_WORDS = {
    "on_track": "on track", "at_risk": "at risk", "off_track": "off track", "no_data": "no data",
    "too_early": "too early to tell", "achieved": "achieved", "missed": "missed",
}  # fmt: skip


@dataclass(frozen=True)
class Line:
    """One key result in a message."""

    title: str
    value: str
    status: str
    note: str | None = None


class _RedactWebhooks(logging.Filter):
    """httpx logs every request's full URL at INFO; an incoming-webhook URL is a secret: keep only its host."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = urls

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for url in self.urls:
            if url in message:
                message = message.replace(url, f"https://{urlsplit(url).netloc}/…")
                record.msg, record.args = message, ()
        return True


class _Retry(Exception):
    """A chat service answered 5xx/429 or could not be reached: try again."""


def slack_message(heading: str, lines: list[Line]) -> dict[str, Any]:
    text = "\n".join(f"• *{line.title}*: {line.value} ({STATUS_WORDS.get(line.status, line.status)})" for line in lines)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": heading[:150]}}]
    if text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    return {"text": heading, "blocks": blocks}


def teams_message(heading: str, lines: list[Line]) -> dict[str, Any]:
    facts = [
        {"title": line.title, "value": f"{line.value} — {STATUS_WORDS.get(line.status, line.status)}"} for line in lines
    ]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": heading, "weight": "Bolder", "size": "Medium", "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


class Notifier:
    """Posts messages to the configured chats in the background; ``post`` returns at once."""

    def __init__(self, settings: NotificationSettings, *, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.client = client or httpx.Client(timeout=10)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="okrsync-notify")
        urls = [u.get_secret_value() for u in (settings.slack_webhook_url, settings.teams_webhook_url) if u]
        self._redact = _RedactWebhooks(urls)
        logging.getLogger("httpx").addFilter(self._redact)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.slack_webhook_url or self.settings.teams_webhook_url)

    def post(self, heading: str, lines: list[Line]) -> list[Future[bool]]:
        """Queue the message for every configured chat; each future says whether it was delivered."""
        futures = []
        if self.settings.slack_webhook_url:
            futures.append(
                self._pool.submit(self._send, self.settings.slack_webhook_url, slack_message(heading, lines))
            )
        if self.settings.teams_webhook_url:
            futures.append(
                self._pool.submit(self._send, self.settings.teams_webhook_url, teams_message(heading, lines))
            )
        return futures

    def _send(self, url: SecretStr, payload: dict[str, Any]) -> bool:
        host = urlsplit(url.get_secret_value()).netloc  # the path holds the secret: log the host only
        retrying = Retrying(
            retry=retry_if_exception_type(_Retry),
            wait=wait_random_exponential(multiplier=self.settings.wait_base, max=30),
            stop=stop_after_attempt(self.settings.attempts),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        answer = self.client.post(url.get_secret_value(), json=payload)
                    except httpx.HTTPError as exc:
                        raise _Retry(type(exc).__name__) from None
                    if answer.status_code >= 500 or answer.status_code == 429:
                        raise _Retry(f"HTTP {answer.status_code}")
                    if answer.status_code >= 400:
                        log.warning("chat at %s refused the message: HTTP %s", host, answer.status_code)
                        return False
            return True
        except _Retry as exc:
            log.warning("chat at %s unreachable after %d attempts (%s)", host, self.settings.attempts, exc)
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()
        logging.getLogger("httpx").removeFilter(self._redact)


def check_in_lines(key_results: dict[str, dict[str, Any]]) -> list[Line]:
    """The lines of a check-in summary, from a frozen check-in's key results."""
    lines = []
    for kr in key_results.values():
        value = kr.get("value")
        shown = "–" if value is None else f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
        confidence = kr.get("confidence")
        note = f"confidence {confidence}" if confidence is not None else None
        lines.append(Line(kr.get("title", ""), f"{shown} / {kr.get('target', 0):,.0f}", kr.get("status", ""), note))
    return lines


def status_change_lines(before: dict[str, str], after: dict[str, str], titles: dict[str, str]) -> list[Line]:
    """Key results whose status changed between two computations (e.g. on track → at risk)."""
    return [
        Line(
            titles.get(key, key),
            f"{STATUS_WORDS.get(before[key], before[key])} → {STATUS_WORDS.get(status, status)}",
            status,
        )
        for key, status in after.items()
        if key in before and before[key] != status
    ]


def latest_status_changes(session: Any, *, mapping_id: int) -> list[tuple[str, str, str]]:
    """(kr key, status before, status now) between the mapping's last two computations."""
    rows = session.exec(
        sqlmodel.select(KeyResultHistory)
        .where(KeyResultHistory.mapping_id == mapping_id)
        .order_by(col(KeyResultHistory.computation_id).desc())
    ).all()
    runs = sorted({r.computation_id for r in rows}, reverse=True)[:2]
    if len(runs) < 2:
        return []
    now = {r.kr_key: r.status for r in rows if r.computation_id == runs[0]}
    before = {r.kr_key: r.status for r in rows if r.computation_id == runs[1]}
    return [
        (key, before[key], status) for key, status in sorted(now.items()) if key in before and before[key] != status
    ]
