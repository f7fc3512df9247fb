"""One computed sandbox world per database for the dashboard tests: the Salesforce sandbox synced, the three example
mappings applied and computed over five weeks (so key results have a history), tokens for every role, and the
sidecar on loopback. Built once per module: the dashboard only reads, and the tests that record something assert on
what they recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import sqlmodel
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from service.app import create_app
from service.compute.service import compute
from service.dashboard import endpoints
from service.kit.auth import Role, create_token
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.kit.server import ThreadedServer
from service.kit.settings import Settings
from service.okrs.models import OkrMapping
from tests import loopback
from tests.conftest import ANCHOR, POSTGRES_URL, _postgres_engine, fast_config
from tests.service.writeback.world import apply_examples, deployed_org, start_salesforce

WEEKS = [ANCHOR - timedelta(days=7 * n) for n in (4, 3, 2, 1, 0)]
TODAY = ANCHOR - timedelta(days=2)  # the dashboard's clock: Q3 2026 is still running
KAM_EMAIL = "katrin.lindqvist@sandbox.okrsync.dev"
REP_EMAIL = "Mia.Vogel@sandbox.okrsync.dev"  # a rep of the acquisition team; the CRM spells it in lower case


@dataclass
class DashboardWorld:
    base_url: str
    engine: Engine
    app: FastAPI
    tokens: dict[str, str]
    mappings: dict[str, int]  # example name -> mapping id

    def client(self, role: str | None = None, **headers: str) -> loopback.Client:
        """An HTTP client for the dashboard; with ``role``, sending that role's bearer token."""
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return loopback.client(base_url=self.base_url, headers=headers, timeout=30, follow_redirects=False)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardWorld]:
    tmp = tmp_path_factory.mktemp("dashboard")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'okrsync.db'}"
    else:
        admin = _postgres_engine()
        import service.models  # noqa: F401

        SQLModel.metadata.drop_all(admin)
        admin.dispose()
        url = POSTGRES_URL
    engine = make_engine(url)
    create_schema(engine)
    with ExitStack() as stack:
        start_salesforce(stack, engine, tmp, deployed_org(), fast_config)
        apply_examples(engine, "salesforce", ("acquisition", "customer-care", "pipeline-hygiene"), as_of=WEEKS[0])
    with Session(engine) as session:
        mappings = session.exec(sqlmodel.select(OkrMapping).order_by(OkrMapping.id)).all()  # type: ignore[arg-type]
        for week in WEEKS[1:]:
            for mapping in mappings:
                compute(session, mapping=mapping, as_of=week)
        emails = {Role.kam: KAM_EMAIL, Role.rep: REP_EMAIL}  # the CRM users they are
        tokens = {
            role.value: create_token(
                session,
                name=f"{role.value} token",
                role=role,
                email=emails.get(role),
                team="Vertrieb DACH" if role is Role.lead else None,
            )[1]
            for role in Role
        }
        tokens["rep_no_email"] = create_token(session, name="rep without e-mail", role=Role.rep)[1]
        tokens["rep_stranger"] = create_token(
            session, name="rep unknown to the CRM", role=Role.rep, email="nobody@elsewhere.example"
        )[1]
        ids = {
            {"Key Accounts": "customer-care", "Q3 2026 hygiene": "pipeline-hygiene"}.get(
                m.team if m.team == "Key Accounts" else m.cycle, "acquisition"
            ): m.id or 0
            for m in mappings
        }
        session.commit()
    app = create_app(settings=Settings(_env_file=None), engine=engine)  # type: ignore[call-arg]
    app.dependency_overrides[endpoints.now] = lambda: TODAY
    with ThreadedServer(app) as http:
        yield DashboardWorld(http.base_url, engine, app, tokens, ids)
    engine.dispose()


def set_today(world: DashboardWorld, today: datetime) -> None:
    """Move the dashboard's clock (restore it with ``set_today(world, TODAY)``)."""
    world.app.dependency_overrides[endpoints.now] = lambda: today
