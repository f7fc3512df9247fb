"""The built-in sandbox's world: a Salesforce org and a HubSpot portal telling the same quarter.

Generated deterministically from the sandbox settings (seed, sizes, anchor date, portal id); the anchor date is kept
in ``state_dir/org.json`` so a restart tells the same quarter. ``okrsync demo``, ``okrsync sandbox`` and
``--sandbox`` runs use it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.salesforce.mapping import CASE_OBJECT, EMAIL_STREAM, OBJECTS
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.salesforce_metadata import DEFAULT_METADATA_DIR, load_metadata
from connectors.sandbox.store import SandboxOrg


def sandbox_org(state_dir: Path, options: Any) -> SandboxOrg:
    """The sandbox org; ``options`` carries ``seed``, ``accounts``, ``opportunities``, ``activities`` and ``anchor``
    (None: now, kept for later runs)."""
    state_file = state_dir / "org.json"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, Any] = {
        "seed": options.seed,
        "accounts": options.accounts,
        "opportunities": options.opportunities,
        "activities": options.activities,
    }
    if options.anchor is not None:
        wanted["anchor"] = options.anchor.astimezone(UTC).isoformat()
    saved = json.loads(state_file.read_text()) if state_file.exists() else {}
    if {k: saved.get(k) for k in wanted} != wanted:
        anchor = options.anchor or datetime.now(UTC).replace(second=0, microsecond=0)
        saved = {**wanted, "anchor": anchor.isoformat()}
        state_file.write_text(json.dumps(saved, indent=2))
    anchor = datetime.fromisoformat(saved["anchor"])
    sizes_only = {k: v for k, v in wanted.items() if k != "anchor"}
    # okrsync's metadata deployed, as an admin would with `sf project deploy` (deploy/salesforce)
    return SandboxOrg(generate_org(anchor=anchor, **sizes_only), metadata=load_metadata(DEFAULT_METADATA_DIR))


def sandbox_world(state_dir: Path, options: Any) -> tuple[SandboxOrg, HubSpotPortal]:
    """The sandbox org and the HubSpot portal seeded from the same records (``options.portal_id``). The portal is
    a Sales Hub Professional/Enterprise one with the leads object, so ``OKRSYNC_HUBSPOT__LEADS=object`` can be tried
    against it (the default, lifecycle, reads the same leads from contacts)."""
    org = sandbox_org(state_dir, options)
    records = {t: org.records(t, include_deleted=True) for t in (*OBJECTS, EMAIL_STREAM, CASE_OBJECT)}
    portal, _ids = portal_from_org(records, portal_id=options.portal_id, leads_object=True)
    return org, portal
