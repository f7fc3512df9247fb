"""A second okrsync deployment pointed at the same org: its first write-back finds okrsync's records already in the
CRM (upserts that update instead of create) and warns that both deployments would write; the deployment that wrote
them first never gets the warning."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlmodel import Session

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.writer import SalesforceWriter
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.sync.service import run_sync
from service.writeback.service import send
from tests.conftest import fast_config
from tests.service.writeback.world import apply_examples, connection, deployed_org, start_salesforce


def test_a_second_deployment_on_the_same_org_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first_engine = make_engine(f"sqlite:///{tmp_path / 'first.db'}")
    second_engine = make_engine(f"sqlite:///{tmp_path / 'second.db'}")
    for engine in (first_engine, second_engine):
        create_schema(engine)
    with ExitStack() as stack:
        world = start_salesforce(stack, first_engine, tmp_path, deployed_org(), fast_config)
        writer = SalesforceWriter(fast_config(world.server))
        apply_examples(first_engine, "salesforce", ("acquisition",))
        with Session(first_engine) as session:
            first_id = connection(session, "salesforce").id or 0
        first = send(first_engine, writer, connection_id=first_id)
        assert first.written > 0 and first.second_deployment_warning is None
        assert "warning" not in first.summary()

        # another deployment (its own database) on the same org, with the same mapping file
        run_sync(second_engine, SalesforceConnector(fast_config(world.server)), connection_name="sandbox")
        apply_examples(second_engine, "salesforce", ("acquisition",))
        with Session(second_engine) as session:
            second_id = connection(session, "salesforce").id or 0
        with caplog.at_level(logging.WARNING, logger="service.writeback.service"):
            second = send(second_engine, SalesforceWriter(fast_config(world.server)), connection_id=second_id)
        objects = sum(first.created[t] for t in ("objective", "key_result", "contribution"))
        assert sum(second.already_there.values()) == objects  # every okrsync object was already there
        warning = second.second_deployment_warning
        assert warning is not None and "another okrsync deployment may be writing" in warning
        assert f"warning: {warning}" in second.summary() and warning in caplog.text

        # the first deployment writing again (its records, known by id) is not warned
        apply_examples(first_engine, "salesforce", ("acquisition",))
        again = send(first_engine, writer, connection_id=first_id)
        assert again.second_deployment_warning is None
    first_engine.dispose()
    second_engine.dispose()
