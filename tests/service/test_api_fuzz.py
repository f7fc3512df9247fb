"""API fuzzing with Schemathesis from the sidecar's own OpenAPI document (issue 17).

A seeded database (the sandbox org synced, the acquisition and customer-care examples applied and computed) behind
a real sidecar on loopback; every operation of /openapi.json gets a fixed, derandomised budget of generated
requests — valid ones and, from Schemathesis's negative mode, invalid ones — sent with a sales_ops token. Two checks
on every answer: no 5xx (``not_a_server_error``) and the answer matches the documented schema for its status
(``response_schema_conformance``, so errors must be the documented ``{"error", "detail"}``). The number of requests
per operation is printed (``-s``) and written to ``fuzz-requests.json`` in the test's temporary folder.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.kit.settings import Settings, WebhookSettings
from tests.service.test_api import Api, served_api

EXAMPLES_PER_OPERATION = 100
REAL = ("acquisition", "customer-care")
# computing a whole mapping per request (preview, apply) costs about a second: fewer, still both modes
SLOW_OPERATIONS = {"POST /api/v1/mappings/preview": 40, "POST /api/v1/mappings/apply": 40}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Path]]:
    folder = tmp_path_factory.mktemp("fuzz")
    engine = make_engine(f"sqlite:///{folder / 'okrsync.db'}")
    create_schema(engine)
    try:
        # webhooks and the HubSpot card set up (unset they answer 503 "not set up", by design)
        hooks = WebhookSettings(
            hubspot_client_secret="fuzz-client-secret", flow_secret="fuzz-flow-secret",
            salesforce_org_id="00D000000000001AAA", public_base_url="https://okrsync.example.com",
        )  # fmt: skip
        settings = Settings(_env_file=None, webhooks=hooks)  # type: ignore[call-arg]
        with served_api(engine, folder, settings) as api:
            yield api, folder
    finally:
        engine.dispose()


@pytest.mark.slow
def test_no_operation_answers_5xx_or_off_schema(fuzzed: tuple[Api, Path]) -> None:
    api, folder = fuzzed
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    auth = {"Authorization": f"Bearer {api.tokens['sales_ops']}"}
    session = requests.Session()
    session.trust_env = False  # the machine's proxy/CA variables have no business with a loopback call
    sent: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]

    def _check(case: schemathesis.Case, label: str) -> None:
        response = case.call(base_url=api.base_url, session=session, headers=auth, timeout=60)
        sent[label] += 1
        statuses[f"{label} {response.status_code}"] += 1
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    for operation in operations:
        label = operation.label
        budget = SLOW_OPERATIONS.get(label, EXAMPLES_PER_OPERATION)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # two of three cases aimed at what exists (a real mapping, key result, sprint, record), so requests get
            # past the 404s into the handlers; the rest keep Schemathesis's own values
            strategy = st.tuples(
                operation.as_strategy(generation_mode=mode), st.sampled_from([None, *REAL]), st.integers(0, 2)
            ).map(lambda drawn, real=real_values(api): _aim(*drawn, real=real))

            one = _fuzz(strategy, budget, lambda case, label=label: _check(case, label))
            try:
                one()
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body): negative mode has no case
                assert mode is GenerationMode.NEGATIVE, label
            except Exception as exc:  # noqa: BLE001  (collected: one report for every operation)
                failures.append(f"{label} ({mode.value}): {str(exc)[:1500]}")
    (folder / "fuzz-requests.json").write_text(json.dumps(dict(sorted(sent.items())), indent=1))
    print("\nrequests per operation:", json.dumps(dict(sorted(sent.items())), indent=1))
    print("total requests:", sum(sent.values()))
    print("answers:", json.dumps(dict(sorted(statuses.items())), indent=1))
    assert not failures, "\n\n".join(failures)
    assert all(sent[op.label] > 0 for op in operations)


def _fuzz(strategy: Any, budget: int, check: Callable[[schemathesis.Case], None]) -> Callable[[], None]:
    """A Hypothesis test of ``budget`` cases from ``strategy``, derandomised: the same requests in every run."""

    @settings(
        max_examples=budget,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        check(case)

    return run


def real_values(api: Api) -> dict[str, dict[str, str]]:
    """Path parameters that exist in the seeded database, per example mapping."""
    return {
        "acquisition": {
            "mapping_id": str(api.mapping), "kr_key": "discovery-meetings", "sprint_key": "acquisition-sprint-1",
            "crm": "salesforce", "object_name": "opportunity", "record_id": api.opportunity,
        },
        "customer-care": {
            "mapping_id": str(api.kam_mapping), "kr_key": "nps", "sprint_key": "none", "crm": "salesforce",
            "object_name": "account", "record_id": api.kam_account,
        },
    }  # fmt: skip


def _aim(case: schemathesis.Case, which: str | None, keep: int, *, real: dict[str, dict[str, str]]) -> Any:
    """The case with its path parameters replaced by real ones (``which``), except ``keep`` of them (0: all
    replaced), so a real mapping id meets a generated key result too."""
    if which is not None and case.path_parameters:
        names = sorted(case.path_parameters)
        for index, name in enumerate(names):
            if name in real[which] and (keep == 0 or index != keep % len(names)):
                case.path_parameters[name] = real[which][name]
    return case
