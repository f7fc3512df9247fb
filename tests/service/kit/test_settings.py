"""Settings of several CRM connections (OKRSYNC_CONNECTIONS): parsed from the environment as JSON, and every mistake
refused with a message naming the connection and the field, never printing a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from service.kit.settings import Settings, settings_problems

TOKEN = "pat-na1-not-to-be-printed"
PASSWORD = "hunter2-not-to-be-printed"


def _hubspot(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "hubspot": {"access_token": TOKEN}, **more}


def _salesforce(name: str, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "salesforce": {"access_token": TOKEN, "instance_url": "https://west.my.salesforce.com"},
        **more,
    }


def _settings(monkeypatch: pytest.MonkeyPatch, connections: Any, **env: str) -> Settings:
    for name in [n for n in os.environ if n.startswith("OKRSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OKRSYNC_CONNECTIONS", json.dumps(connections))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_extra_connections_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(
        monkeypatch,
        [
            _hubspot("west", hubspot_portal_id=145000002),
            _salesforce("emea", salesforce_org_id="00D5g000004WESTAAA"),
            _hubspot("emea"),  # the same name for another CRM is another connection
        ],
    )
    assert [c.key for c in settings.connections] == ["hubspot/west", "salesforce/emea", "hubspot/emea"]
    west = settings.connections[0]
    assert west.crm == "hubspot" and west.hubspot_portal_id == 145000002 and west.hubspot is not None
    assert isinstance(west.hubspot.access_token, SecretStr) and TOKEN not in repr(settings) + str(settings)
    assert settings.extra_connection("salesforce", "emea") is settings.connections[1]
    assert settings.extra_connection("salesforce", "west") is None
    assert _settings(monkeypatch, []).connections == []


CASES = [
    ([_hubspot("West")], "OKRSYNC_CONNECTIONS[0] ('West'): name: 'West' is not a connection name: 1 to 40 lower-case"),
    ([_hubspot("a" * 41)], "OKRSYNC_CONNECTIONS[0] ('" + "a" * 41 + "'): name: "),
    ([{"hubspot": {"access_token": TOKEN}}], "OKRSYNC_CONNECTIONS[0]: name: missing"),
    (
        [_hubspot("west"), _hubspot("west")],
        "OKRSYNC_CONNECTIONS[1] ('west'): name: hubspot/west is already OKRSYNC_CONNECTIONS[0]",
    ),
    (
        [{**_hubspot("west"), **_salesforce("west")}],
        'OKRSYNC_CONNECTIONS[0] (\'west\'): give exactly one of "salesforce" or "hubspot" (got both)',
    ),
    (
        [{"name": "west"}],
        'OKRSYNC_CONNECTIONS[0] (\'west\'): give exactly one of "salesforce" or "hubspot" (got neither)',
    ),
    (
        [_hubspot("default")],
        "OKRSYNC_CONNECTIONS[0] ('default'): name: 'default' is OKRSYNC_CONNECTION_NAME, the default connection's",
    ),
    ([_hubspot("sandbox")], "OKRSYNC_CONNECTIONS[0] ('sandbox'): name: 'sandbox' is the sandbox CRM's default"),
    ([{"name": "west", "hubspot": {}}], "OKRSYNC_CONNECTIONS[0] ('west'): hubspot.access_token: missing"),
    (
        [{"name": "west", "salesforce": {"username": "u@acme.com", "password": PASSWORD}}],
        "OKRSYNC_CONNECTIONS[0] ('west'): salesforce: Salesforce auth mode 'password' needs salesforce.consumer_key",
    ),
    (
        [_hubspot("west", hubspot_portal_id=7), _hubspot("east", hubspot_portal_id=7)],
        "OKRSYNC_CONNECTIONS[1] ('east'): hubspot_portal_id: 7 is OKRSYNC_CONNECTIONS[0] ('west')'s too",
    ),
    (
        [
            _salesforce("west", salesforce_org_id="00D000000000001"),
            _salesforce("east", salesforce_org_id="00D000000000001AAA"),
        ],
        "OKRSYNC_CONNECTIONS[1] ('east'): salesforce_org_id: 00D000000000001AAA is OKRSYNC_CONNECTIONS[0] ('west')'s",
    ),
    (
        [_salesforce("west", salesforce_org_id="00Dnope")],
        "('west'): salesforce_org_id: '00Dnope' is not a Salesforce org",
    ),
    ([_salesforce("west", hubspot_portal_id=7)], "('west'): \"hubspot_portal_id\" belongs to a hubspot connection"),
    ([_hubspot("west", salesforce_org_id="00D000000000001")], '"salesforce_org_id" belongs to a salesforce connection'),
    ([_hubspot("west", portal_id=7)], "OKRSYNC_CONNECTIONS[0] ('west'): portal_id: Extra inputs are not permitted"),
    (
        [_hubspot("west", hubspot_portal_id=0)],
        "('west'): hubspot_portal_id: Input should be greater than or equal to 1",
    ),
    ({"name": "west"}, "OKRSYNC_CONNECTIONS: Input should be a valid list"),
]


@pytest.mark.parametrize(
    ("connections", "message"),
    CASES,
    ids=[
        "capital-letter", "name-too-long", "no-name", "duplicate-name", "both-crms", "no-crm", "default-name",
        "sandbox-name", "hubspot-token-missing", "salesforce-auth-incomplete", "portal-id-twice", "org-id-twice",
        "bad-org-id", "portal-id-on-salesforce", "org-id-on-hubspot", "unknown-field", "portal-id-zero", "not-a-list",
    ],
)  # fmt: skip
def test_a_bad_connection_is_refused_naming_it_and_the_field(
    monkeypatch: pytest.MonkeyPatch, connections: Any, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(monkeypatch, connections)
    problems = settings_problems(refused.value)
    assert any(message in line for line in problems), problems
    shown = str(refused.value) + "\n".join(problems)
    assert TOKEN not in shown and PASSWORD not in shown


def test_an_extra_org_id_must_differ_from_the_default_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(
            monkeypatch,
            [_salesforce("west", salesforce_org_id="00D000000000001AAA")],
            OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID="00D000000000001",
        )
    assert settings_problems(refused.value) == [
        "OKRSYNC_CONNECTIONS[0] ('west'): salesforce_org_id: 00D000000000001AAA is the default connection"
        " (OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID)'s too"
    ]


@pytest.mark.slow  # okrsync in a subprocess
def test_the_command_line_names_the_problem_and_prints_no_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(
        OKRSYNC_DATA_DIR=str(tmp_path),
        OKRSYNC_CONNECTIONS=json.dumps([_hubspot("west"), {"name": "West", "hubspot": {"access_token": TOKEN}}]),
        OKRSYNC_HUBSPOT__ACCESS_TOKEN=TOKEN,
        OKRSYNC_HUBSPOT__LOOKBACK_SECONDS="-1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "okrsync settings are invalid:" in done.stderr
    assert "OKRSYNC_HUBSPOT__LOOKBACK_SECONDS: Input should be greater than or equal to 0" in done.stderr
    assert "OKRSYNC_CONNECTIONS[1] ('West'): name: 'West' is not a connection name" in done.stderr
    assert TOKEN not in done.stderr + done.stdout and "Traceback" not in done.stderr


@pytest.mark.slow  # okrsync in a subprocess
@pytest.mark.parametrize(
    ("variable", "text", "problem"),
    [
        (
            "OKRSYNC_CONNECTIONS",
            '[{"name": "west", "hubspot": {"access_token": "' + TOKEN + '"',
            "OKRSYNC_CONNECTIONS: not valid JSON (Expecting ',' delimiter at line 1, column ",
        ),
        ("OKRSYNC_CONNECTIONS", "west," + TOKEN, "OKRSYNC_CONNECTIONS: not valid JSON (Expecting value at line 1"),
    ],
    ids=["unterminated", "not-json"],
)
def test_unparsable_json_in_a_setting_is_one_line_without_the_value(
    tmp_path: Path, variable: str, text: str, problem: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update({"OKRSYNC_DATA_DIR": str(tmp_path), variable: text})
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "report"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("okrsync settings are invalid: " + problem), done.stderr
    assert TOKEN not in done.stderr + done.stdout
