"""CRM names → adapters (``connectors.adapter.CrmAdapter``): the one place that lists the CRMs okrsync speaks.

``adapter("hubspot")`` answers the adapter or raises ``UnknownCrmError`` naming the known ones; ``register`` adds one
(a plug-in, or the test-only adapter of ``tests/service/test_crm_seam.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from connectors.adapter import CrmAdapter
from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.salesforce.adapter import ADAPTER as SALESFORCE

ADAPTERS: dict[str, CrmAdapter] = {SALESFORCE.name: SALESFORCE, HUBSPOT.name: HUBSPOT}
BUILT_IN = tuple(ADAPTERS)  # the CRMs with a settings section, a sandbox and a `okrsync sync <crm>` command

if TYPE_CHECKING:
    CrmName = str
else:  # a path or query parameter naming a built-in CRM: its enum in the OpenAPI document lists them
    CrmName = Literal[BUILT_IN]


class UnknownCrmError(LookupError):
    """No adapter has this name."""


def adapter(name: str) -> CrmAdapter:
    found = ADAPTERS.get(name)
    if found is None:
        raise UnknownCrmError(f"no CRM named {name!r}: okrsync speaks {', '.join(sorted(ADAPTERS))}")
    return found


def register(new: CrmAdapter) -> None:
    """Add an adapter under its name (replacing one of the same name)."""
    ADAPTERS[new.name] = new
