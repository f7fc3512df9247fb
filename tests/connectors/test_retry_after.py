"""The retry policy honours the server's Retry-After (connectors/retry.py), through the HubSpot client over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.errors import RetriableError
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.retry import RETRY_AFTER_MAX, call_with_retries, retry_after_seconds
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "Sat, 05 Dec 2026 12:00:30 GMT"}, now=now) == 30.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_the_policy_waits_at_least_what_the_server_asked_and_at_most_the_cap() -> None:
    waits: list[float] = []
    answers = iter([RetriableError("busy", retry_after=3), RetriableError("busy", retry_after=10_000), "done"])

    def attempt() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = call_with_retries(attempt, crm="x", name="call", max_attempts=3, wait_base=0.01, wait_max=0.05,
                               sleep=waits.append)  # fmt: skip
    assert result == "done"
    assert waits[0] >= 3 and waits[0] < 3.1  # backoff alone would wait at most 0.05 s
    assert waits[1] == RETRY_AFTER_MAX


def test_the_hubspot_connector_passes_the_servers_retry_after_on(tmp_path: Path) -> None:
    portal = HubSpotPortal()
    with SandboxServer(SandboxOrg(data={}), portal=portal, cert_dir=tmp_path) as server:
        config = HubSpotConfig(access_token=SecretStr(portal.access_token), host=server.base_url,
                               ca_bundle=Path(server.ca_path or ""), max_attempts=1)  # fmt: skip
        portal.faults.add("http", times=1, status=503, headers={"Retry-After": "4"})
        connector = HubSpotConnector(config)
        with pytest.raises(RetriableError) as raised:
            connector._call_once("owners", lambda: connector._owners.get_page_with_http_info(), search=False)  # noqa: SLF001
        assert raised.value.retry_after == 4.0
