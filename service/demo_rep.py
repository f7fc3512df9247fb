"""The demo's simulated rep (``okrsync demo``): logs meetings in the sandbox CRM, the CRM tells the sidecar.

Every few seconds, in each sandbox CRM in turn, a team member logs a meeting like one that counts for the
acquisition mapping's ``discovery-meetings`` (a copy with its account, opportunity and people, dated now). Then the
CRM's webhook is sent to the sidecar exactly as the CRM would send it (``CrmAdapter.sandbox_meeting``: HubSpot's
signed ``object.creation`` batch, for Salesforce the Flow callout signed with the shared secret; both secrets are the
sandbox's published demo values). The sidecar's worker refreshes, recomputes and writes back; the rep reads the key
result from the sidecar's API (``GET /api/v1/mappings/{id}``) and prints it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.registry import adapter
from service.kit.settings import Settings

KR = "discovery-meetings"
WAIT_FOR_VALUE_SECONDS = 30


class Rep:
    """Logs meetings like counted ones, in the sandbox CRM, and sends the CRM's webhooks to the sidecar."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        engine: Engine,
        sandbox: Any,
        settings: Settings,
        mappings: dict[str, int],
    ) -> None:
        from service.compute import report as reports
        from service.okrs.models import OkrMapping

        self.base_url, self.sandbox, self.mappings = base_url, sandbox, mappings
        self.hooks = settings.webhooks
        self.public_url = (self.hooks.public_base_url or base_url).rstrip("/")
        self.api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.rng = random.Random(7)
        self.event_number = self.rng.randrange(10**6, 10**9)
        self.meetings: dict[str, list[str]] = {}
        self.names: dict[str, dict[str, str]] = {}
        with Session(engine) as session:
            for crm, mapping_id in mappings.items():
                mapping = session.get(OkrMapping, mapping_id)
                assert mapping is not None
                _total, rows = reports.evidence(session, mapping, KR, limit=500)
                self.meetings[crm] = [row.record_id for row in rows if row.part == "counted"]
                self.names[crm] = reports.owner_names(session, mapping.connection_id)
                if not self.meetings[crm]:
                    raise RuntimeError(f"no meeting counts for {KR} in {adapter(crm).title}: nothing to copy")

    def close(self) -> None:
        self.api.close()

    # -- the sidecar's view ------------------------------------------------------------------------------------
    def key_result(self, crm: str) -> tuple[float | None, str]:
        """The key result's value and status as the sidecar's API shows them."""
        answer = self.api.get(f"/api/v1/mappings/{self.mappings[crm]}", params={"trend": 0})
        answer.raise_for_status()
        for objective in answer.json()["objectives"]:
            for kr in objective["key_results"]:
                if kr["key"] == KR:
                    return kr["value"], str(kr["status"]).replace("_", " ")
        raise RuntimeError(f"mapping {self.mappings[crm]} has no key result {KR}")

    # -- one activity ------------------------------------------------------------------------------------------
    def log_meeting(self, crm: str, *, wait_until: float) -> str:
        """Log a meeting in ``crm``, send the webhook, and wait (until ``wait_until``, monotonic) for the key
        result to move; returns the line to print."""
        before, _status = self.key_result(crm)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        crm_adapter = adapter(crm)
        self.event_number += 1
        logged = crm_adapter.sandbox_meeting(
            self.sandbox, self.rng.choice(self.meetings[crm]), now, hooks=self.hooks, public_url=self.public_url,
            event_id=self.event_number,
        )  # fmt: skip
        answer = httpx.post(f"{self.base_url}{logged.path}", content=logged.body, headers=logged.headers, timeout=10)
        _check(answer, crm_adapter.title)
        who, account = self.names[crm].get(logged.owner_id, "A rep"), logged.account or "a prospect"
        after, status = before, ""
        while after == before and time.monotonic() < wait_until:
            time.sleep(0.3)
            after, status = self.key_result(crm)
        did = f"{datetime.now():%H:%M:%S} {who} logged a meeting with {account} ({crm_adapter.title})"
        if after == before:
            return f"{did} → {KR} still {_shown(before)}: the sidecar has not counted it yet"
        return f"{did} → {KR} {_shown(before)} → {_shown(after)} ({status})"


def _check(answer: httpx.Response, crm: str) -> None:
    if answer.status_code != 200:
        raise RuntimeError(f"the sidecar refused the {crm} webhook: {answer.status_code} {answer.text[:300]}")


def _shown(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def simulate_rep(
    *,
    base_url: str,
    token: str,
    engine: Engine,
    sandbox: Any,
    settings: Settings,
    mappings: dict[str, int],
    every: float,
    duration: float | None,
    say: Callable[[str], Any],
) -> None:
    """Log a meeting every ``every`` seconds, in each CRM of ``mappings`` in turn, until ``duration`` has passed (None:
    until interrupted), printing each with the key result's value before and after."""
    rep = Rep(base_url=base_url, token=token, engine=engine, sandbox=sandbox, settings=settings, mappings=mappings)
    crms = list(mappings)
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    try:
        turn = 0
        while deadline is None or time.monotonic() < deadline:
            crm = crms[turn % len(crms)]
            wait_until = time.monotonic() + WAIT_FOR_VALUE_SECONDS
            say(rep.log_meeting(crm, wait_until=wait_until if deadline is None else min(wait_until, deadline + 5)))
            turn += 1
            pause = started + turn * every - time.monotonic()
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            if pause > 0:
                time.sleep(pause)
    finally:
        rep.close()
