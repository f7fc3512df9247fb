"""Bad input: wrong credentials, an unreachable instance, unknown custom fields, malformed records."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.errors import AuthenticationError, ConfigurationError, UnreachableError
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.sync.models import SyncSkip, SyncState
from service.sync.service import run_sync
from tests.conftest import fast_config
from tests.service.sync.helpers import local_rows


def sync(engine: Engine, config: SalesforceConfig):  # type: ignore[no-untyped-def]
    return run_sync(engine, SalesforceConnector(config), connection_name="sandbox")


def test_wrong_password_is_refused_with_a_message_that_names_the_user_not_the_secret(
    engine: Engine, sandbox: SandboxServer
) -> None:
    config = fast_config(sandbox, password="hunter2-wrong")
    with pytest.raises(AuthenticationError) as caught:
        sync(engine, config)
    message = str(caught.value)
    assert "rep@sandbox.okrsync.dev" in message and "invalid_grant" in message
    assert "hunter2" not in message and "sandbox-token" not in message


def test_unreachable_instance_fails_after_retries(engine: Engine, sandbox: SandboxServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    url = f"https://127.0.0.1:{closed_port}"
    config = fast_config(sandbox, instance_url=url, login_url=url)
    with pytest.raises(UnreachableError, match=f"127.0.0.1:{closed_port}.*did not answer"):
        sync(engine, config)


def test_an_unknown_custom_field_stops_the_sync_naming_the_field_and_the_setting(
    engine: Engine, org: SandboxOrg, sandbox: SandboxServer
) -> None:
    config = fast_config(sandbox, custom_fields={"Opportunity": ["Segment__c", "Forecast_Notes__c"]})
    with pytest.raises(ConfigurationError, match=r"Forecast_Notes__c.*OKRSYNC_SALESFORCE__CUSTOM_FIELDS"):
        sync(engine, config)
    assert len(local_rows(engine, "account")) == len(org.records("Account")), "earlier objects stay synced"
    assert local_rows(engine, "opportunity") == {}
    with Session(engine) as session:
        state = session.get(SyncState, (1, "Opportunity"))
        assert state is None or state.cursor_at is None


def test_malformed_records_are_skipped_by_name_and_the_rest_is_stored_exactly(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    account_id = org.records("Account")[0]["Id"]
    bad = org.insert(
        "Opportunity",
        {
            "Name": "Broken",
            "AccountId": account_id,
            "StageName": "Prospecting",
            "Amount": "lots",
            "CloseDate": "2026-10-01",
            "IsClosed": False,
        },
    )
    text = "Verhandlung mit 株式会社サンプル — Ünïcödé " + "x" * 32_000
    odd = org.insert(
        "Opportunity",
        {
            "Name": "Ölgesellschaft «Восток» 東京",
            "AccountId": account_id,
            "StageName": "Stage nobody configured",
            "NextStep": text,
            "Amount": None,
            "CloseDate": None,
            "IsClosed": False,
        },
    )
    report = sync(engine, config)

    assert report.counts["Opportunity"].skipped == 1
    with Session(engine) as session:
        skip = session.execute(select(SyncSkip)).scalars().one()
    assert skip.external_id == bad["Id"] and f"Opportunity {bad['Id']}: amount" in skip.reason
    assert skip.raw["Amount"] == "lots", "the payload is kept"
    stored = local_rows(engine, "opportunity")
    assert bad["Id"] not in stored
    assert stored[odd["Id"]].next_step == text and stored[odd["Id"]].name == "Ölgesellschaft «Восток» 東京"
    assert stored[odd["Id"]].stage == "Stage nobody configured" and stored[odd["Id"]].amount is None

    org.update("Opportunity", bad["Id"], {"Amount": 1000.0})
    sync(engine, config)
    assert local_rows(engine, "opportunity")[bad["Id"]].amount == 1000.0, "fixed in the CRM → synced next run"
