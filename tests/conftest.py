"""Shared fixtures: a real database (SQLite file and PostgreSQL), the sandbox CRM on loopback over TLS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from connectors.salesforce.adapter import ADAPTER as SALESFORCE
from connectors.salesforce.config import SalesforceConfig
from connectors.sandbox.generator import generate_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.kit.db import make_engine
from service.kit.migrate import create_schema

BASE_POSTGRES_URL = os.environ.get("OKRSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# pytest-xdist runs several processes: each gets its own database (test_gw0, test_gw1, …) next to the base one
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
POSTGRES_URL = f"{BASE_POSTGRES_URL}_{WORKER}" if WORKER else BASE_POSTGRES_URL
ANCHOR = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)


def _create_worker_database() -> None:
    if not WORKER:
        return
    admin = make_engine(BASE_POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = POSTGRES_URL.rsplit("/", 1)[1]
    try:
        with admin.connect() as conn:
            if not conn.execute(text("select 1 from pg_database where datname = :n"), {"n": name}).first():
                conn.execute(text(f'create database "{name}"'))
    finally:
        admin.dispose()


def _postgres_engine() -> Engine:
    try:
        _create_worker_database()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(
            f"PostgreSQL at {BASE_POSTGRES_URL} is not reachable ({exc}); start it (.ci/run does) — not skipping"
        )
    engine = make_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc}); start it (.ci/run does) — not skipping")
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'okrsync.db'}"
    engine = _postgres_engine()
    import service.models  # noqa: F401

    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    create_schema(engine)
    yield engine
    engine.dispose()


def small_org(**sizes: int) -> SandboxOrg:
    """A small but paged org: more than 2,000 Tasks so queries need nextRecordsUrl."""
    params = {"seed": 7, "accounts": 30, "opportunities": 80, "activities": 3200, **sizes}
    return SandboxOrg(generate_org(anchor=ANCHOR, **params))


@pytest.fixture
def org() -> SandboxOrg:
    return small_org()


@pytest.fixture
def sandbox(org: SandboxOrg, tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(org, cert_dir=tmp_path / "sandbox") as server:
        yield server


def fast_config(server: SandboxServer, **overrides: object) -> SalesforceConfig:
    """Connector settings for the sandbox with short waits, so retry tests take milliseconds."""
    base = SALESFORCE.sandbox_config(server.base_url, server.ca_path).model_dump()
    base.update(retry_wait_base=0.01, retry_wait_max=0.05, max_attempts=4, timeout_seconds=5)
    base.update(overrides)
    return SalesforceConfig.model_validate(base)


@pytest.fixture
def config(sandbox: SandboxServer) -> SalesforceConfig:
    return fast_config(sandbox)
