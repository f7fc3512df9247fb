"""OKRSYNC_MODE=production: okrsync serve and okrsync worker refuse to start while a setting a real deployment needs
is missing or still a placeholder, list every problem at once, never show a value, and never open their port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.hubspot.config import HubSpotConfig
from service.kit.server import free_port
from service.kit.settings import Settings, WebhookSettings, production_problems

OKRSYNC = str(Path(sys.executable).parent / "okrsync")
PG = "postgresql://okrsync:s3cret-Pa55@db.internal:5432/okrsync"


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, mode="production", **values)  # type: ignore[call-arg, arg-type]


def test_a_complete_production_configuration_has_no_problems() -> None:
    settings = _settings(
        database_url=PG,
        hubspot=HubSpotConfig(access_token=SecretStr("pat-eu1-0123456789abcdef")),
        webhooks=WebhookSettings(
            public_base_url="https://okrsync.acme.com", hubspot_client_secret=SecretStr("4f1c9e2a-real-secret")
        ),  # fmt: skip
    )
    assert production_problems(settings) == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, ["OKRSYNC_DATABASE_URL is not set", "no CRM is configured"]),
        ({"database_url": "sqlite:///okrsync.db"}, ["is not PostgreSQL", "no CRM is configured"]),
        ({"database_url": "postgresql://okrsync:change-me@db/okrsync"}, ["placeholder password", "no CRM"]),
        (
            {"database_url": PG, "hubspot": HubSpotConfig(access_token=SecretStr("change-me"))},
            ["OKRSYNC_HUBSPOT__ACCESS_TOKEN is still a placeholder", "PUBLIC_BASE_URL is not set",
             "HUBSPOT_CLIENT_SECRET is not set"],
        ),
        (
            {"database_url": PG, "hubspot": HubSpotConfig(access_token=SecretStr("pat-real-token")),
             "webhooks": WebhookSettings(public_base_url="http://okrsync.acme.com",
                                         hubspot_client_secret=SecretStr("real"))},
            ["must be https://"],
        ),
    ],
    ids=["nothing", "sqlite", "placeholder-password", "placeholders-and-webhooks", "plain-http"],
)  # fmt: skip
def test_missing_and_placeholder_settings_are_named(values: dict[str, object], expected: list[str]) -> None:
    problems = production_problems(_settings(**values))
    for part in expected:
        assert any(part in p for p in problems), (part, problems)
    assert len(problems) == len(expected), problems
    assert not any("change-me" in p or "s3cret" in p for p in problems)  # never a value


@pytest.mark.slow  # okrsync in a subprocess
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start_and_open_nothing(command: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")},
        "OKRSYNC_MODE": "production",
        "OKRSYNC_DATA_DIR": str(tmp_path),
        "OKRSYNC_HUBSPOT__ACCESS_TOKEN": "change-me-token-123",
        "OKRSYNC_SERVE__PORT": str(port),
    }
    process = subprocess.Popen([OKRSYNC, command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    opened = False
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        with socket.socket() as probe:
            opened = opened or probe.connect_ex(("127.0.0.1", port)) == 0
        time.sleep(0.02)
    output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 1, output
    assert not opened
    assert "cannot start in production mode" in output
    for part in ("OKRSYNC_DATABASE_URL is not set", "OKRSYNC_HUBSPOT__ACCESS_TOKEN is still a placeholder",
                 "PUBLIC_BASE_URL is not set", "HUBSPOT_CLIENT_SECRET is not set"):  # fmt: skip
        assert part in " ".join(output.split()), output
    assert "change-me-token-123" not in output
    assert not (tmp_path / "okrsync.db").exists()  # nothing was created
