"""Chat notifications with respx: Slack and Teams payload shapes, retry on 5xx, no retry on 4xx, the webhook URL
(a secret) never in the logs, and posting never blocks the caller."""

from __future__ import annotations

import logging
import threading

import httpx
import pytest
import respx
from pydantic import SecretStr

from service.notifications.service import (
    Line,
    Notifier,
    check_in_lines,
    status_change_lines,
)
from service.notifications.settings import NotificationSettings

SLACK = "https://hooks.slack.com/services/T000/B000/sEcReTtOkEn"
TEAMS = "https://acme.webhook.office.com/webhookb2/abc@def/IncomingWebhook/sEcReT2/xyz"
LINES = [Line("40 discovery meetings", "18 / 40", "at_risk"), Line("<b>€6M</b> pipeline", "6 / 6", "on_track")]


def notifier(**urls: str) -> Notifier:
    settings = NotificationSettings.model_validate({**{k: SecretStr(v) for k, v in urls.items()}, "wait_base": 0.001})
    return Notifier(settings)


@respx.mock
def test_slack_and_teams_payloads() -> None:
    slack = respx.post(SLACK).mock(return_value=httpx.Response(200, text="ok"))
    teams = respx.post(TEAMS).mock(return_value=httpx.Response(202))
    chat = notifier(slack_webhook_url=SLACK, teams_webhook_url=TEAMS)
    assert [f.result(timeout=5) for f in chat.post("Check-in Vertrieb DACH, week 38", LINES)] == [True, True]
    body = slack.calls.last.request.content.decode()
    sent = httpx.Response(200, content=body).json()
    assert sent["text"] == "Check-in Vertrieb DACH, week 38"
    assert (
        sent["blocks"][0]["type"] == "header"
        and "*40 discovery meetings*: 18 / 40 (at risk)" in sent["blocks"][1]["text"]["text"]
    )
    card = httpx.Response(200, content=teams.calls.last.request.content).json()
    assert card["type"] == "message"
    content = card["attachments"][0]
    assert content["contentType"] == "application/vnd.microsoft.card.adaptive"
    facts = content["content"]["body"][1]["facts"]
    assert facts[1] == {"title": "<b>€6M</b> pipeline", "value": "6 / 6 — on track"}  # sent as text, not markup
    chat.close()


@respx.mock
def test_5xx_is_retried_4xx_is_not_and_the_secret_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flaky = respx.post(SLACK).mock(side_effect=[httpx.Response(503), httpx.Response(500), httpx.Response(200)])
    chat = notifier(slack_webhook_url=SLACK)
    assert chat.post("x", LINES)[0].result(timeout=5) is True and flaky.call_count == 3
    respx.post(SLACK).mock(return_value=httpx.Response(404))
    assert chat.post("x", LINES)[0].result(timeout=5) is False
    respx.post(SLACK).mock(side_effect=httpx.ConnectError("down"))
    assert chat.post("x", LINES)[0].result(timeout=5) is False
    assert "hooks.slack.com" in caplog.text and "sEcReTtOkEn" not in caplog.text
    chat.close()


@respx.mock
def test_posting_never_blocks_the_caller() -> None:
    release = threading.Event()

    def held(request: httpx.Request) -> httpx.Response:
        release.wait(timeout=10)  # the chat answers only when the test lets it
        return httpx.Response(200)

    respx.post(SLACK).mock(side_effect=held)
    chat = notifier(slack_webhook_url=SLACK)
    [future] = chat.post("x", LINES)  # returns while the chat has not answered yet (no timing involved)
    assert not future.done()
    release.set()
    assert future.result(timeout=5) is True
    chat.close()


def test_lines_from_a_check_in_and_from_status_changes() -> None:
    frozen = {"d": {"title": "Discovery", "value": 18.0, "target": 40, "status": "at_risk", "confidence": 6}}
    assert check_in_lines(frozen) == [Line("Discovery", "18 / 40", "at_risk", "confidence 6")]
    changed = status_change_lines({"a": "on_track", "b": "at_risk"}, {"a": "at_risk", "b": "at_risk"}, {"a": "A"})
    assert changed == [Line("A", "on track → at risk", "at_risk")]
    assert not notifier().enabled and notifier().post("x", LINES) == []
