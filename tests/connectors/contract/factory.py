"""Assemble the contract suite for one CRM: a test class per property, bound to the CRM's driver.

``contract_suite(driver)`` answers ``{"Test<Title><Property>": class}`` for the test module to put in its namespace
(meltano's ``get_tap_test_class`` does the same from its test templates). A property a CRM cannot have is named in
``exceptions`` with the reason: its class is still assembled, every test in it skipped with that reason, so the
exception shows in each run's summary instead of disappearing.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.connectors.contract.drivers import CrmDriver
from tests.connectors.contract.properties import (
    ContractTest,
    CursorsResumeAfterAKill,
    DeletesArrive,
    KeysUniqueAndNonNull,
    RecordsMatchTheCanonicalSchema,
    RetriableFaultIsRetried,
    TargetedFetchEqualsFullRead,
)

PROPERTIES: tuple[type[ContractTest], ...] = (
    KeysUniqueAndNonNull,
    RecordsMatchTheCanonicalSchema,
    CursorsResumeAfterAKill,
    RetriableFaultIsRetried,
    DeletesArrive,
    TargetedFetchEqualsFullRead,
)


def contract_suite(
    driver: CrmDriver,
    *,
    exceptions: Mapping[type[ContractTest], str] | None = None,
    slow: Mapping[type[ContractTest], str] | None = None,
) -> dict[str, type[ContractTest]]:
    """One test class per property for ``driver``'s CRM. ``exceptions``: property → why this CRM skips it;
    ``slow``: property → why its tests take more than ~3 s for this CRM (marked ``slow``: out of ``make test-fast``)."""
    exceptions, slow = dict(exceptions or {}), dict(slow or {})
    unknown = [p.__name__ for p in {**exceptions, **slow} if p not in PROPERTIES]
    assert not unknown, f"not contract properties: {unknown}"
    assert all(reason.strip() for reason in (*exceptions.values(), *slow.values())), "each needs its reason"
    suite: dict[str, type[ContractTest]] = {}
    for prop in PROPERTIES:
        name = f"Test{driver.title}{prop.__name__}"
        body: dict[str, object] = {"driver": driver, "__qualname__": name, "__doc__": prop.__doc__}
        marks = [pytest.mark.slow] if prop in slow else []
        if prop in exceptions:
            marks.append(pytest.mark.skip(reason=f"{driver.title} contract exception: {exceptions[prop]}"))
        body["pytestmark"] = marks
        suite[name] = type(name, (prop,), body)
    return suite
