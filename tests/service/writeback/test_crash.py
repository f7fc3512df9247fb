"""kill -9 of `okrsync writeback` after Salesforce applied a batch but before the answer arrived, then a restart:
the CRM ends with every record once and the values computed, and the outbox has nothing left to send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce.writer import SalesforceWriter
from service.writeback.service import send
from tests.conftest import fast_config
from tests.service.writeback.world import apply_examples, connection, deployed_org, outbox, start_salesforce

pytestmark = pytest.mark.slow  # kill -9 of a write-back subprocess


def test_killed_between_send_and_acknowledgement(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        world = start_salesforce(stack, engine, tmp_path, deployed_org(), fast_config)
        apply_examples(engine, "salesforce", ("acquisition",))
        krs = outbox(engine, target="key_result")
        # the second upsert call (key results) is applied, and then its answer never comes
        world.org.faults.add("latency", match="composite_upsert", after=1, times=1, seconds=60, after_handler=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
        env.update(OKRSYNC_DATA_DIR=str(tmp_path), OKRSYNC_DATABASE_URL=db_url)
        child = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "writeback", "salesforce", "--sandbox-url", world.server.base_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while len(world.org.records("OKR_Key_Result__c")) < len(krs):
                assert child.poll() is None, child.communicate()
                assert time.monotonic() < deadline, "the writer never reached the key results"
                time.sleep(0.05)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        assert {r.status for r in outbox(engine, target="objective")} == {"sent"}
        assert {r.status for r in outbox(engine, target="key_result")} == {"pending"}  # in the CRM, not acknowledged
        world.org.faults.clear()

        with Session(engine) as session:
            connection_id = connection(session, "salesforce").id or 0
        report = send(engine, SalesforceWriter(fast_config(world.server)), connection_id=connection_id)
        assert not report.problems
        assert report.updated["key_result"] == len(krs) and report.created["key_result"] == 0  # found by external id
        assert not outbox(engine, status="pending")
        for sobject in ("OKR_Objective__c", "OKR_Key_Result__c", "OKR_Contribution__c"):
            ids = Counter(r["Okrsync_Id__c"] for r in world.org.records(sobject))
            assert ids and max(ids.values()) == 1, sobject
        written = {r["Okrsync_Id__c"]: r for r in world.org.records("OKR_Key_Result__c")}
        for row in krs:
            assert written[row.record_key]["Records__c"] == row.payload["records"]
