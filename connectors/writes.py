"""What okrsync writes back to a CRM, in CRM-neutral terms, and what a writer answers per record.

The service stages *targets* (an OKR objective, a key result, a record's contribution to a key result, a KAM
criterion, and okrsync's fields on opportunities and accounts) as plain dicts of the neutral fields below; each
CRM writer maps them to its own objects and field names (``connectors/salesforce/writer.py``,
``connectors/hubspot/writer.py``) and says which of them it writes.

Object targets are records okrsync owns, keyed by an *okrsync id* (team, cycle and key) that the CRM stores in a
unique external-id field, so an upsert repeated after a lost answer updates the same record instead of creating a
second one. Field targets are okrsync's fields on the CRM's own opportunities and accounts, keyed by their CRM id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Target(StrEnum):
    objective = "objective"
    key_result = "key_result"
    contribution = "contribution"
    kam_criterion = "kam_criterion"
    opportunity = "opportunity"
    account = "account"


OBJECT_TARGETS = (Target.objective, Target.key_result, Target.contribution, Target.kam_criterion)
FIELD_TARGETS = (Target.opportunity, Target.account)
# Parents before children: a key result names its objective, a contribution its key result (by okrsync id).
WRITE_ORDER = (*OBJECT_TARGETS, *FIELD_TARGETS)

# The neutral fields of each target. Fractions (progress, expected, scores) are 0–1; the writer converts them to
# what the CRM field holds (Salesforce percent fields hold 0–100).
FIELDS: dict[Target, tuple[str, ...]] = {
    Target.objective: (
        "title", "team", "cycle", "objective_key", "progress", "status", "achieved", "computed_at",
    ),
    Target.key_result: (
        "objective", "title", "team", "cycle", "kr_key", "metric", "value", "target", "progress", "expected",
        "grade", "status", "achieved", "records", "computed_at", "dashboard_url",
    ),
    Target.contribution: (
        "key_result", "opportunity_id", "account_id", "records", "value", "summary", "computed_at",
    ),
    Target.kam_criterion: (
        "account_id", "title", "criterion_key", "status", "source", "measured", "comment", "account_score",
        "computed_at",
    ),
    Target.opportunity: ("hygiene_score", "hygiene_issues", "hygiene_checked", "key_results"),
    Target.account: ("kam_score", "kam_criteria", "key_results"),
}  # fmt: skip
# Time stamps: written along with a change, but a change of the stamp alone is no reason to write.
STAMP_FIELDS = frozenset({"computed_at", "hygiene_checked"})


@dataclass(frozen=True)
class WriteRequest:
    """One record to write: ``key`` is the okrsync id (object targets) or the CRM record id (field targets);
    ``crm_id`` is the CRM's id of an object-target record when known (needed to delete it)."""

    key: str
    values: dict[str, Any] = field(default_factory=dict)
    crm_id: str | None = None


@dataclass
class WriteResult:
    """The CRM's answer for one record. ``retriable`` failures (a locked row, a busy server) may succeed when the
    same write is sent again; the others need a person (or new values) first."""

    key: str
    ok: bool
    crm_id: str | None = None
    created: bool | None = None
    code: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()
    retriable: bool = False


class Writer(Protocol):
    """What the write-back service needs from a CRM writer."""

    crm: str
    api_calls: int

    def written_fields(self) -> dict[Target, frozenset[str]]:
        """Neutral fields written per target; a target missing from the answer is not written at all."""
        ...

    def object_name(self, target: Target) -> str:
        """The CRM object a target is written to (for messages)."""
        ...

    def upsert(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        """Create or update the records (in as few calls as the CRM allows); one result per request, any order.
        Raises a ``connectors.errors`` error when the whole call is refused (unknown field, missing scope …)."""
        ...

    def delete(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        """Delete object-target records by ``crm_id``; a record already gone counts as deleted."""
        ...
