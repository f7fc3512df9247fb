"""Fixtures of the contract suite: the CRM of the test class's driver, started for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# the properties live outside test modules: have pytest explain their failed asserts as it does in test modules
pytest.register_assert_rewrite("tests.connectors.contract.properties")

from tests.connectors.contract.drivers import LiveCrm  # noqa: E402


@pytest.fixture
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveCrm]:
    """A small org in the CRM of ``request.cls.driver`` (bound by ``factory.contract_suite``), fresh per test:
    the tests delete records and plan faults in it."""
    with request.cls.driver.start(tmp_path) as live:
        yield live


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # the streams a CRM deletes from differ per CRM: the driver names them, one test each
    if "deleted_stream" in metafunc.fixturenames and metafunc.cls is not None:
        metafunc.parametrize("deleted_stream", metafunc.cls.driver.deletable)
