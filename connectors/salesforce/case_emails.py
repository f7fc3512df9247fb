"""E-mails without a task (Email-to-Case) for the Salesforce connector: their cases read, each e-mail mapped.

"ActivityId can only be specified for emails on cases. It's auto-created for other entities"
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_emailmessage.htm):
an EmailMessage without a task is an Email-to-Case e-mail, ParentId its case. Its account and contact are the case's,
read here with ``SELECT Id, AccountId, ContactId, OwnerId FROM Case WHERE Id IN (…)`` (300 ids a query, queryAll so a
deleted case still relates a deleted e-mail). Access to such an e-mail "depends on the user's access to the related
case record": an integration user without Read on Case sees none of them (but those it created), so the connector
says so once per run, naming the permission. ``mapping.case_email`` turns one row into an activity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.errors import ConfigurationError, SkippableError
from connectors.records import CanonicalRecord, SkippedRecord
from connectors.salesforce import mapping

log = logging.getLogger(__name__)


class NoCases(ConfigurationError):
    """The integration user cannot read Case (no Read on Case in its profile or permission sets)."""


@dataclass
class CaseLookup:
    """Reads cases for one run. ``query(soql)`` runs one ``queryAll`` and returns its first (only) page; it raises
    ``NoCases`` when the org refuses Case, which is then said once and not asked again in the run."""

    query: Callable[[str], dict[str, Any]]
    readable: bool = True
    asked: bool = False

    def cases(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Case id → its ``mapping.CASE_FIELDS``; {} when Case cannot be read. No ids: one query only to learn
        whether Case can be read (a full sync that named no case asks so, so that a missing permission is said)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, max(len(ids), 1), 300):
            if not self.readable:
                break
            listed = ", ".join(repr(i) for i in ids[start : start + 300])
            where = f" WHERE Id IN ({listed})" if ids else " LIMIT 1"
            self.asked = True
            try:
                result = self.query(f"SELECT {', '.join(mapping.CASE_FIELDS)} FROM {mapping.CASE_OBJECT}{where}")
            except NoCases as exc:
                log.warning(
                    "Salesforce does not let okrsync read Case (%s): e-mails on cases (Email-to-Case, without a"
                    " task) follow access to their case, so okrsync sees few or none of them and relates those it"
                    " sees only through their RelatedToId; the others are no inquiries and no responses. Give the"
                    " integration user Read on Case (the okrsync_integration permission set in deploy/salesforce"
                    " grants it)",
                    str(exc).strip()[:120],
                )
                self.readable = False
                break
            found.update({str(case["Id"]): case for case in result.get("records", []) if case.get("Id")})
        return found


def map_case_emails(
    rows: list[dict[str, Any]], lookup: CaseLookup
) -> tuple[list[CanonicalRecord], list[SkippedRecord]]:
    """Task-less e-mail rows of one page as e-mail activities, related through their cases (one look-up for the
    page, none when it names no case) or through what RelatedToId names; an e-mail related to nothing okrsync syncs
    is left out (not an error), a row that cannot be mapped is skipped with the reason."""
    named = sorted({i for row in rows for i in mapping.case_ids(row)})
    cases = lookup.cases(named) if named else {}
    records: list[CanonicalRecord] = []
    skipped: list[SkippedRecord] = []
    unrelated = 0
    for row in rows:
        try:
            record = mapping.case_email(row, cases)
        except SkippableError as exc:
            log.warning("skipped %s", exc)
            skipped.append(SkippedRecord(external_id=row.get("Id"), reason=str(exc), raw=row))
            continue
        if record is None:
            unrelated += 1
        else:
            records.append(record)
    if unrelated:
        log.info("%d e-mails without a task relate to no account, contact or opportunity: left out", unrelated)
    return records, skipped
