"""Stateful property of the Salesforce sync: whatever happens in the org, and to the runs, the local copy follows.

A Hypothesis state machine drives the sandbox org (one HTTPS server per test, its org reset for every sequence)
and the real stack: simple-salesforce in ``SalesforceConnector``, ``run_sync`` into the test's database. Changes:
creates, updates, soft deletes (recycle bin, ``IsDeleted`` through queryAll), undeletes, hard deletes (only
getDeleted tells), merges (losers deleted, children re-parented with a new SystemModstamp only), contacts related
to and unrelated from activities (a relation row with its own stamp, the activity not re-stamped; the activity
re-stamped when a relation is removed), contact roles added and removed, accounts and contacts of records changed,
bulk updates and mass reassignments at one instant spanning query pages, and late commits (a SystemModstamp in the
past: inside the look-back, or before it). Runs: plain incremental, through faults the connector retries (429,
500, 503, a dropped answer, an expired session, the concurrent request limit), with a change made between the Task
query's two pages or between any two calls, killed (after N committed pages, by a fault that outlasts the retries,
by the daily API limit; full runs too) and resumed, and ``--full``.

Invariants:
- after every incremental run that ends, the local copy equals the org for everything the API lets an incremental
  run see: every record queryAll returns, with the fields okrsync selects, IsDeleted, SystemModstamp, its links
  (an activity's contacts: WhoId and its relations) and references; records only getDeleted lists are marked
  deleted. The one thing it cannot see is a late commit stamped before the run's look-back window: such a record
  (until it changes again) is left out. A run during which the org changed is checked for everything but what
  changed meanwhile, the next run for everything;
- after ``--full`` the local copy equals the org completely, late commits included. Every sequence ends with one.

Every sequence starts from the same generated org with a full sync into a connection of its own, with a look-back
of 0 (the cursor logic alone) or the default 600 s (every run re-reads what changed since the sequence began). The
budget is fixed and seeded (``derandomize``); the test prints, and writes to ``stateful-budget.txt`` in its tmp
dir, how many sequences and steps ran.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from connectors.errors import ApiLimitError, UnreachableError
from connectors.salesforce import mapping
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.schema import format_datetime, parse_datetime
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.crm.models import ActivityContact, CrmConnection
from service.sync.repository import TABLES
from service.sync.service import ProgressCallback, SyncReport, run_sync
from tests.conftest import ANCHOR, fast_config
from tests.service.sync.stateful_kit import Killed, killer

PAGE_SIZE = 200  # the smallest Salesforce allows: the org's 224 tasks take two pages
BASE = generate_org(anchor=ANCHOR, seed=11, accounts=5, opportunities=10, activities=270, shared_activities=True)
MAX_ATTEMPTS = 4  # fast_config's: a fault firing this often in a row outlasts the retries
EXAMPLES, STEPS = 8, 25
BUDGET = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

COUNTS: dict[str, int] = defaultdict(int)  # sequences, steps, syncs, checks: what actually ran, for the note

ACTIVITY_PREFIX = {"Task": "00T", "Event": "00U"}
TEXT_FIELD = {
    "User": "Title",
    "Account": "Name",
    "Contact": "Title",
    "Opportunity": "NextStep",
    "OpportunityContactRole": "Role",
    "Task": "Subject",
    "Event": "Subject",
}
STAGES = ["Prospecting", "Qualification", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]


class DistinctStampOrg(SandboxOrg):
    """The sandbox org whose clock never gives two writes the same millisecond (it waits for the next one). Separate
    API transactions in a real org are never that close; a delete and the undelete right after it sharing a stamp
    would be this test's artefact, not Salesforce's. Writes meant to share an instant pass their stamp."""

    def __init__(self, data: dict[str, list[dict]]) -> None:
        super().__init__(data)
        self._clock = threading.Lock()
        self._last: datetime | None = None

    def now(self) -> datetime:
        with self._clock:
            current = super().now()
            while self._last is not None and current <= self._last:
                time.sleep(0.0002)
                current = super().now()
            self._last = current
            return current


@dataclass(frozen=True)
class Change:
    """One change to the org. ``picks`` choose the records (index modulo the candidates, sorted by id), ``text`` a
    new text value, ``flag`` a variant (a loser more, an invitee, a late commit inside the look-back, ...)."""

    kind: str
    sobject: str
    picks: tuple[int, int, int]
    text: str = ""
    flag: bool = False


INDEX = st.integers(min_value=0, max_value=999)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Cs"]), max_size=10)
DELETABLE = ("Account", "Contact", "Opportunity", "OpportunityContactRole", "Task", "Event")


def changes(kind: str, sobjects: tuple[str, ...]) -> st.SearchStrategy[Change]:
    return st.builds(
        Change,
        kind=st.just(kind),
        sobject=st.sampled_from(sobjects),
        picks=st.tuples(INDEX, INDEX, INDEX),
        text=TEXT,
        flag=st.booleans(),
    )


CREATES = changes("create", DELETABLE)
UPDATES = changes("update", ("User", *DELETABLE))
DELETES = changes("delete", DELETABLE)
UNDELETES = changes("undelete", DELETABLE)
PURGES = changes("purge", DELETABLE)
MERGES = changes("merge", ("Account", "Contact"))
RELATES = changes("relate", ("Task", "Event"))
UNRELATES = changes("unrelate", ("TaskRelation", "EventRelation"))
BULK = changes("bulk", ("Task", "Event", "Contact", "Opportunity"))
LATE = changes("late", ("User", "Account", "Contact", "Opportunity", "Task", "Event"))
# what a user or another integration may do while a sync runs (late commits need the runs' times: not here)
ANY_CHANGE = st.one_of(CREATES, UPDATES, DELETES, UNDELETES, PURGES, MERGES, RELATES, UNRELATES, BULK)


@dataclass(frozen=True)
class Fault:
    """A fault the connector must get through: ``kind`` with ``params``, on the ``after``+1st call named ``match``
    (None: any call), ``times`` calls in a row."""

    kind: str
    match: str | None
    after: int
    times: int
    params: tuple[tuple[str, Any], ...] = ()


# calls of every incremental run: 1 query (User), 8 queryAll (6 objects, 2 relation objects), 6 getDeleted
# the calls of a quiet incremental run, by kind: query is User's; queryAll the others, EmailMessage's too (the
# e-mails' directions, and the e-mails without a task: a deleted one arrives deleted)
CALLS = {None: 18, "query": 1, "queryAll": 10, "getDeleted": 7}
RETRIED = st.sampled_from(
    [
        ("http", (("status", 429),)),
        ("http", (("status", 503),)),
        ("http", (("status", 500),)),
        ("http", (("status", 403), ("message", "ConcurrentPerOrgLongTxn Limit exceeded."))),
        ("drop", ()),
    ]
)


@st.composite
def retried_faults(draw: st.DrawFn) -> Fault:
    match = draw(st.sampled_from(list(CALLS)))
    after = draw(st.integers(0, CALLS[match] - 1))
    if draw(st.booleans()):  # an expired session: simple-salesforce's 401; the connector logs in again once
        return Fault("expire_session", match, after, 1)
    kind, params = draw(RETRIED)
    return Fault(kind, match, after, draw(st.integers(1, MAX_ATTEMPTS - 1)), params)


@dataclass(frozen=True)
class Kill:
    """How a run dies: ``pages`` committed pages then kill -9, or a fault on call ``after``+1: 503 until the retries
    are spent, or the org's daily API limit."""

    how: str
    after: int


# every run has at least 9 pages (one per stream, empty or not) and 7 calls (a full run: one query per object)
KILLS = st.one_of(
    st.builds(Kill, how=st.just("pages"), after=st.integers(0, 8)),
    st.builds(Kill, how=st.sampled_from(["unreachable", "daily_limit"]), after=st.integers(0, 6)),
)

F = TypeVar("F", bound=Callable[..., Any])


def step(rule_body: F) -> F:
    """Count the step; the sequence is whole again only when the step ends without an error."""

    @functools.wraps(rule_body)
    def counted(self: SalesforceSyncMachine, *args: Any, **kwargs: Any) -> Any:
        COUNTS["steps"] += 1
        self.broken = True
        result = rule_body(self, *args, **kwargs)
        self.broken = False
        return result

    return cast(F, counted)


def _pick(rows: list[dict[str, Any]], index: int) -> dict[str, Any] | None:
    return rows[index % len(rows)] if rows else None


class SalesforceSyncMachine(RuleBasedStateMachine):
    server: ClassVar[SandboxServer]
    engine: ClassVar[Engine]
    org: ClassVar[DistinctStampOrg]

    def __init__(self) -> None:
        super().__init__()
        self.broken = True
        self.connection = ""
        self.config: SalesforceConfig | None = None
        self.lookback = timedelta(0)
        self.last_began = self.last_ended = datetime.now(UTC)
        # (sobject, id) -> the SystemModstamp of a late commit an incremental run may not see, while it is current
        self.late: dict[tuple[str, str], str] = {}
        self.callback_errors: list[BaseException] = []
        self.callback_notes: list[str] = []

    # -- the org -------------------------------------------------------------------------------------------
    def live(self, sobject: str) -> list[dict[str, Any]]:
        return sorted(self.org.snapshot(sobject), key=lambda r: r["Id"])

    def everything(self, sobject: str) -> list[dict[str, Any]]:
        return sorted(self.org.snapshot(sobject, include_deleted=True), key=lambda r: r["Id"])

    def apply(self, change: Change) -> str:
        """Make ``change`` in the org; returns what was done (for the failure report)."""
        handler = getattr(self, f"_{change.kind}")
        done: str = handler(change)
        return f"{change.kind} {change.sobject}: {done}"

    def _values(self, sobject: str, change: Change) -> dict[str, Any] | None:
        """Fields of a new record, its parents picked among live records; None when a parent is missing."""
        one, two, three = change.picks
        owner = _pick([u for u in self.live("User") if u["IsActive"]], one)
        account = _pick(self.live("Account"), two)
        contact = _pick(self.live("Contact"), three)
        opportunity = _pick(self.live("Opportunity"), one + two)
        day = ANCHOR.date() + timedelta(days=one % 90)
        text = change.text or f"{sobject} {one}"
        if owner is None or account is None:
            return None
        if sobject == "Account":
            parent = account["Id"] if change.flag else None
            return {"Name": text, "OwnerId": owner["Id"], "Type": "Prospect", "ParentId": parent, "Tier__c": "B"}
        if sobject == "Contact":
            last = change.text or f"Doe {one}"
            return {
                "FirstName": "Pat",
                "LastName": last,
                "Name": f"Pat {last}",
                "Email": f"pat{one}@example.com",
                "AccountId": account["Id"],
                "OwnerId": owner["Id"],
            }
        if sobject == "Opportunity":
            stage = STAGES[two % len(STAGES)]
            return {
                "Name": text,
                "AccountId": account["Id"],
                "OwnerId": owner["Id"],
                "StageName": stage,
                "Amount": float(one * 100),
                "CloseDate": day,
                "IsClosed": stage.startswith("Closed"),
                "IsWon": stage == "Closed Won",
                "Segment__c": "SMB",
            }
        if sobject == "OpportunityContactRole":
            if contact is None or opportunity is None:
                return None
            return {
                "OpportunityId": opportunity["Id"],
                "ContactId": contact["Id"],
                "Role": "Decision Maker",
                "IsPrimary": change.flag,
            }
        what = opportunity if (opportunity is not None and change.flag) else account
        links = {
            "OwnerId": owner["Id"],
            "WhoId": contact["Id"] if contact is not None and one % 3 else None,
            "WhatId": what["Id"],
            "AccountId": (what.get("AccountId") or account["Id"]) if what is opportunity else account["Id"],
        }
        if sobject == "Task":
            done = bool(two % 2)
            subtype = ["Call", "Email", "Task"][one % 3]
            return {
                **links,
                "Subject": text,
                "TaskSubtype": subtype,
                "Type": subtype,
                "Status": "Completed" if done else "Not Started",
                "IsClosed": done,
                "ActivityDate": day,
                "CallType": "Outbound" if subtype == "Call" else None,
            }
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9 + one % 8)
        return {
            **links,
            "Subject": text,
            "Type": "Meeting",
            "StartDateTime": start,
            "EndDateTime": start + timedelta(minutes=30),
            "DurationInMinutes": 30,
            "ActivityDateTime": start,
        }

    def _create(self, change: Change) -> str:
        values = self._values(change.sobject, change)
        if values is None:
            return "no parent to create it under"
        return self.org.insert(change.sobject, values)["Id"]

    def _field_change(self, sobject: str, change: Change) -> dict[str, Any]:
        one, two, _three = change.picks
        account = _pick(self.live("Account"), two)
        contact = _pick(self.live("Contact"), two)
        opportunity = _pick(self.live("Opportunity"), two)
        owner = _pick([u for u in self.live("User") if u["IsActive"]], two)
        choices: list[dict[str, Any]] = [{TEXT_FIELD[sobject]: change.text}]
        if sobject == "User":
            choices.append({"IsActive": change.flag})
        if sobject == "Account" and account is not None:
            choices += [{"ParentId": account["Id"]}, {"AnnualRevenue": float(one) * 1000}, {"Key_Account__c": True}]
        if sobject in ("Contact", "Opportunity") and account is not None:
            choices.append({"AccountId": account["Id"]})  # moves to another account: a new stamp
        if sobject == "Opportunity":
            stage = STAGES[one % len(STAGES)]
            choices.append({"StageName": stage, "IsClosed": stage.startswith("Closed"), "IsWon": stage == "Closed Won"})
            choices.append({"Amount": float(one) * 10, "CloseDate": ANCHOR.date() + timedelta(days=two % 60)})
        if sobject == "OpportunityContactRole":
            choices.append({"IsPrimary": change.flag})
        if sobject in ("Task", "Event"):
            choices.append({"WhoId": contact["Id"] if contact is not None and change.flag else None})
            if opportunity is not None:
                choices.append({"WhatId": opportunity["Id"], "AccountId": opportunity["AccountId"]})
        if sobject not in ("User", "OpportunityContactRole") and owner is not None:
            choices.append({"OwnerId": owner["Id"]})
        return choices[one % len(choices)]

    def _update(self, change: Change) -> str:
        record = _pick(self.live(change.sobject), change.picks[2])
        if record is None:
            return "nothing to update"
        fields = self._field_change(change.sobject, change)
        self.org.update(change.sobject, record["Id"], fields)
        return f"{record['Id']} {fields}"

    def _delete(self, change: Change) -> str:
        record = _pick(self.live(change.sobject), change.picks[0])
        if record is None:
            return "nothing to delete"
        self.org.delete(change.sobject, record["Id"])
        return record["Id"]

    def _undelete(self, change: Change) -> str:
        record = _pick([r for r in self.everything(change.sobject) if r.get("IsDeleted")], change.picks[0])
        if record is None:
            return "recycle bin empty"
        self.org.undelete(change.sobject, record["Id"])
        return record["Id"]

    def _purge(self, change: Change) -> str:
        record = _pick(self.everything(change.sobject), change.picks[0])
        if record is None:
            return "nothing to purge"
        self.org.purge(change.sobject, record["Id"])
        return f"{record['Id']} (was {'in the recycle bin' if record.get('IsDeleted') else 'live'})"

    def _merge(self, change: Change) -> str:
        live = self.live(change.sobject)
        if len(live) < 2:
            return "fewer than two records"
        ids = [r["Id"] for r in live]
        master = ids[change.picks[0] % len(ids)]
        others = [i for i in ids if i != master]
        losers = list(dict.fromkeys(others[p % len(others)] for p in change.picks[1 : 3 if change.flag else 2]))
        keep = {TEXT_FIELD[change.sobject]: change.text} if change.text else {}
        self.org.merge(change.sobject, master, losers, fields=keep)
        return f"{losers} into {master}"

    def _relate(self, change: Change) -> str:
        activity = _pick(self.live(change.sobject), change.picks[0])
        contact = _pick(self.live("Contact"), change.picks[1])
        if activity is None or contact is None:
            return "no activity or contact"
        try:
            self.org.relate(
                change.sobject, activity["Id"], contact["Id"], invitee=change.flag and change.sobject == "Event"
            )
        except ValueError as exc:  # related already, or 50 contacts
            return f"refused: {exc}"
        return f"{contact['Id']} to {activity['Id']}"

    def _unrelate(self, change: Change) -> str:
        relation = _pick(self.live(change.sobject), change.picks[0])
        if relation is None:
            return "no relation"
        self.org.unrelate(relation["Id"])
        return relation["Id"]

    def _bulk(self, change: Change) -> str:
        """Many records at one instant (a data load, a mass update): one SystemModstamp across query pages. With
        ``flag`` a mass reassignment: the records move to one account, opportunity, contact or owner."""
        live = self.live(change.sobject)
        if not live:
            return "nothing to update"
        start, count = change.picks[0] % len(live), 1 + change.picks[1] % len(live)
        chosen = (live + live)[start : start + count]
        fields: dict[str, Any] = {TEXT_FIELD[change.sobject]: change.text or "bulk"}
        if change.flag:
            target, field = {
                "Task": ("Opportunity", "WhatId"),
                "Event": ("Contact", "WhoId"),
                "Contact": ("Account", "AccountId"),
                "Opportunity": ("User", "OwnerId"),
            }[change.sobject]
            parent = _pick(self.live(target), change.picks[2])
            if parent is not None:
                fields = {field: parent["Id"]}
                if change.sobject == "Task":
                    fields["AccountId"] = parent["AccountId"]
        stamp = self.org.now()
        for record in chosen:
            self.org.update(change.sobject, record["Id"], fields, modstamp=stamp)
        return f"{len(chosen)} records at {format_datetime(stamp)}: {fields}"

    def _late(self, change: Change) -> str:
        """A commit stamped in the past (a long transaction): with ``flag`` after the start of the look-back window
        of any next run (it must see it), else before the window of the last run (it may not)."""
        now, ms = self.org.now(), timedelta(milliseconds=1)
        if change.flag:
            low, high = self.last_ended - self.lookback + ms, now - ms  # + ms: stamps have whole milliseconds
        else:
            high = min(self.last_began - self.lookback, now) - timedelta(seconds=3)
            low = high - timedelta(seconds=60)
        stamp = low + (high - low) * (change.picks[1] % 1000) / 1000
        stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
        older = [r for r in self.live(change.sobject) if parse_datetime(r["SystemModstamp"]) < stamp]
        record = _pick(older, change.picks[0])
        if record is None or high < low:
            return "no record older than the stamp"
        self.org.update(change.sobject, record["Id"], {TEXT_FIELD[change.sobject]: change.text}, modstamp=stamp)
        if not change.flag:
            self.late[(change.sobject, record["Id"])] = format_datetime(stamp)
        return f"{record['Id']} stamped {format_datetime(stamp)}"

    def in_late_commit(self, sobject: str, record_id: str) -> bool:
        stamp = self.late.get((sobject, record_id))
        current = self.org.get(sobject, record_id) if stamp else None
        return current is not None and current["SystemModstamp"] == stamp

    # -- runs ----------------------------------------------------------------------------------------------
    def run(self, *, full: bool = False, progress: ProgressCallback | None = None) -> SyncReport:
        assert self.config is not None
        COUNTS["syncs"] += 1
        self.last_began = datetime.now(UTC)
        try:
            return run_sync(
                self.engine,
                SalesforceConnector(self.config),
                connection_name=self.connection,
                full=full,
                progress=progress,
            )
        finally:
            self.last_ended = datetime.now(UTC)
            for text in self.callback_notes:
                note(f"during the run: {text}")
            self.callback_notes.clear()
            if self.callback_errors:
                raise self.callback_errors[0]
            unfired = [(f.kind, f.match, f.fired, f.times) for f in self.org.faults if f.fired < f.times]
            self.org.faults.clear()
            assert not unfired, f"planned faults that never fired: {unfired}"

    def plan(self, fault: Fault) -> None:
        self.org.faults.add(fault.kind, match=fault.match, after=fault.after, times=fault.times, **dict(fault.params))

    def change_while_syncing(self, change: Change, *, match: str | None, after: int) -> None:
        def action(org: SandboxOrg) -> None:
            try:
                self.callback_notes.append(self.apply(change))
            except BaseException as exc:  # noqa: BLE001 - raised again by run() in the test's thread
                self.callback_errors.append(exc)

        self.org.faults.add("change", match=match, after=after, action=action)

    def stamps(self) -> dict[tuple[str, str], tuple[str, tuple[str, str] | None]]:
        """(sobject, id) -> (SystemModstamp, the activity a relation row belongs to) of every record, deleted too."""
        found: dict[tuple[str, str], tuple[str, tuple[str, str] | None]] = {}
        for sobject in mapping.OBJECTS:
            for row in self.org.snapshot(sobject, include_deleted=True):
                found[(sobject, row["Id"])] = (row["SystemModstamp"], None)
        for parent, (relation, parent_field, _name) in mapping.RELATIONS.items():
            for row in self.org.snapshot(relation, include_deleted=True):
                found[(relation, row["Id"])] = (row["SystemModstamp"], (parent, row[parent_field]))
        return found

    def changed_since(self, before: dict[tuple[str, str], tuple[str, tuple[str, str] | None]]) -> set[tuple[str, str]]:
        """The records created, changed or purged since ``before``; a relation row stands for its activity."""
        after = self.stamps()
        changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        return {(after.get(key) or before[key])[1] or key for key in changed}

    def check(self, *, complete: bool, unsettled: Collection[tuple[str, str]] = ()) -> None:
        """The local copy equals the org (``complete``), or, after an incremental run, everything but a current
        late commit stamped before the run's look-back window and (``unsettled``) records changed while it ran."""
        assert self.config is not None
        COUNTS["checks"] += 1

        def skip(sobject: str, record_id: str) -> bool:
            return (sobject, record_id) in unsettled or self.in_late_commit(sobject, record_id)

        problems = compare(self.engine, self.org, self.config, self.connection, skip=None if complete else skip)
        assert not problems, f"{len(problems)} difference(s), e.g.:\n" + "\n".join(problems[:12])
        if complete:
            self.late.clear()

    # -- rules ---------------------------------------------------------------------------------------------
    @initialize(lookback=st.sampled_from([0, 600]))
    def start(self, lookback: int) -> None:
        COUNTS["sequences"] += 1
        self.org.reset(BASE)
        self.connection = f"sequence-{COUNTS['sequences']}"
        self.lookback = timedelta(seconds=lookback)
        self.config = fast_config(self.server, page_size=PAGE_SIZE, lookback_seconds=lookback)
        self.run(full=True)
        self.check(complete=True)
        self.broken = False

    @rule(change=CREATES)
    @step
    def create(self, change: Change) -> None:
        note(self.apply(change))

    @rule(change=UPDATES)
    @step
    def update(self, change: Change) -> None:
        note(self.apply(change))

    @rule(change=DELETES)
    @step
    def soft_delete(self, change: Change) -> None:
        note(self.apply(change))

    @rule(change=UNDELETES)
    @step
    def undelete(self, change: Change) -> None:
        note(self.apply(change))

    @rule(change=PURGES)
    @step
    def hard_delete(self, change: Change) -> None:
        note(self.apply(change))

    @rule(change=MERGES)
    @step
    def merge(self, change: Change) -> None:
        note(self.apply(change))

    @rule(change=st.one_of(RELATES, UNRELATES))
    @step
    def relate_or_unrelate_contact(self, change: Change) -> None:
        note(self.apply(change))

    @rule(change=BULK)
    @step
    def bulk_update(self, change: Change) -> None:
        note(self.apply(change))

    @rule(change=LATE)
    @step
    def late_commit(self, change: Change) -> None:
        note(self.apply(change))

    @rule(full=st.sampled_from([False, False, False, True]))
    @step
    def sync(self, full: bool) -> None:
        """An incremental run (``okrsync sync salesforce``), one time in four ``--full``."""
        self.run(full=full)
        self.check(complete=full)

    @rule(fault=retried_faults())
    @step
    def sync_through_a_fault(self, fault: Fault) -> None:
        self.plan(fault)
        self.run()
        self.check(complete=False)

    @rule(change=ANY_CHANGE, match=st.sampled_from(list(CALLS)), data=st.data())
    @step
    def sync_while_the_org_changes(self, change: Change, match: str | None, data: st.DataObject) -> None:
        self.run_while_the_org_changes(change, match=match, after=data.draw(st.integers(0, CALLS[match] - 1)))

    @precondition(lambda self: len(self.org.snapshot("Task")) > PAGE_SIZE)
    @rule(bulk=changes("bulk", ("Task",)), change=ANY_CHANGE)
    @step
    def sync_while_the_org_changes_between_pages(self, bulk: Change, change: Change) -> None:
        """Enough tasks changed for the Task query to take two pages; the change comes between them."""
        tasks = len(self.org.snapshot("Task"))
        count = PAGE_SIZE + bulk.picks[1] % (tasks - PAGE_SIZE)  # the bulk update changes count + 1 tasks
        note(self.apply(Change("bulk", "Task", (bulk.picks[0], count, 0), bulk.text, bulk.flag)))
        self.run_while_the_org_changes(change, match="query_more", after=0)

    def run_while_the_org_changes(self, change: Change, *, match: str | None, after: int) -> None:
        """A run during which ``change`` happens: it sees what it read before the change (whatever changed
        meanwhile may wait for the next run); the next run sees everything."""
        before = self.stamps()
        self.change_while_syncing(change, match=match, after=after)
        self.run()
        self.check(complete=False, unsettled=self.changed_since(before))
        self.run()
        self.check(complete=False)

    @rule(kill=KILLS, full=st.booleans())
    @step
    def sync_killed(self, kill: Kill, full: bool) -> None:
        """A run that dies; the next run resumes from its last committed page (no check in between: the copy is
        partial by design)."""
        progress = killer(kill.after)
        expected: type[Exception] = Killed
        if kill.how == "unreachable":
            self.plan(Fault("http", None, kill.after, MAX_ATTEMPTS, (("status", 503),)))
            expected = UnreachableError
        elif kill.how == "daily_limit":
            self.plan(
                Fault("http", None, kill.after, 1, (("status", 403), ("message", "TotalRequests Limit exceeded.")))
            )
            expected = ApiLimitError
        with pytest.raises(expected):
            self.run(full=full, progress=progress if kill.how == "pages" else None)
        note(f"killed: {kill}, full={full}")

    def teardown(self) -> None:
        """Every sequence that got through its steps ends with a full run, checked: nothing was left behind."""
        if self.broken or self.config is None:
            return
        self.run(full=True)
        self.check(complete=True)


# -- the comparison ------------------------------------------------------------------------------------------
# local column -> the field it comes from, per object (an activity's account and opportunity: see _references)
REFERENCES: dict[str, dict[str, str]] = {
    "User": {"manager_id": "ManagerId"},
    "Account": {"owner_id": "OwnerId", "parent_id": "ParentId"},
    "Contact": {"account_id": "AccountId", "owner_id": "OwnerId"},
    "Opportunity": {"account_id": "AccountId", "owner_id": "OwnerId"},
    "OpportunityContactRole": {"opportunity_id": "OpportunityId", "contact_id": "ContactId"},
    "Task": {"owner_id": "OwnerId"},
    "Event": {"owner_id": "OwnerId"},
    "Lead": {
        "owner_id": "OwnerId",
        "contact_id": "ConvertedContactId",
        "account_id": "ConvertedAccountId",
        "opportunity_id": "ConvertedOpportunityId",
    },
}


def _references(sobject: str, record: dict[str, Any]) -> dict[str, Any]:
    found = {column: record.get(name) for column, name in REFERENCES[sobject].items()}
    if sobject in ACTIVITY_PREFIX:  # WhatId names an account or an opportunity; AccountId wins for the account
        what = record.get("WhatId") or ""
        found["account_id"] = record.get("AccountId") or (what if what.startswith("001") else None)
        found["opportunity_id"] = what if what.startswith("006") else None
        who = record.get("WhoId") or ""
        found["lead_id"] = who if who.startswith("00Q") else None
    return found


def _contacts(org: SandboxOrg, sobject: str) -> dict[str, set[str]]:
    """Activity id -> its contacts as queryAll returns them: WhoId and the relations with IsWhat = false, deleted
    ones too (the subquery of a queryAll returns deleted children); leads (00Q) are not contacts."""
    relation, parent_field, _name = mapping.RELATIONS[sobject]
    found: dict[str, set[str]] = defaultdict(set)
    for row in org.snapshot(sobject, include_deleted=True):
        found[row["Id"]].add(row.get("WhoId") or "")
    for row in org.snapshot(relation, include_deleted=True):
        if not row["IsWhat"]:
            found[row[parent_field]].add(row["RelationId"])
    return {record_id: {i for i in ids if i.startswith("003")} for record_id, ids in found.items()}


def compare(
    engine: Engine,
    org: SandboxOrg,
    config: SalesforceConfig,
    connection_name: str,
    *,
    skip: Callable[[str, str], bool] | None,
) -> list[str]:
    """Every difference between the local copy of ``connection_name`` and the org, as sentences. A record the org
    has is stored with what queryAll returns of it with the connector's SELECT: the fields (``raw``), IsDeleted,
    SystemModstamp, the references and, for an activity, its contacts; a stored record the org no longer has
    (purged) is marked deleted. ``skip(sobject, id)``: records not to compare. Written from the API's side, not
    with the connector's mapping."""
    problems: list[str] = []
    with Session(engine) as session:
        connection = session.execute(
            select(CrmConnection).where(
                col(CrmConnection.crm) == "salesforce", col(CrmConnection.name) == connection_name
            )
        ).scalar_one()
        stored_contacts: dict[str, set[str]] = defaultdict(set)
        for activity_id, contact_id in session.execute(
            select(col(ActivityContact.activity_id), col(ActivityContact.contact_id)).where(
                col(ActivityContact.connection_id) == connection.id
            )
        ):
            stored_contacts[activity_id].add(contact_id)
        for sobject in mapping.OBJECTS:
            kind = mapping.KINDS[sobject]
            core: Any = TABLES[kind].__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
            columns = ["external_id", "raw", "is_deleted", "modified_at", *_references(sobject, {})]
            stored = {
                row.external_id: row
                for row in session.execute(
                    select(*(core.c[c] for c in columns)).where(core.c.connection_id == connection.id)
                )
                if kind != "activity" or row.external_id.startswith(ACTIVITY_PREFIX[sobject])
            }
            fields = mapping.select_fields(sobject, custom=config.custom_fields.get(sobject, []), multi_currency=False)
            contacts = _contacts(org, sobject) if sobject in ACTIVITY_PREFIX else {}
            in_org = {r["Id"]: r for r in org.snapshot(sobject, include_deleted=True)}
            # an e-mail task is stored with its EmailMessage's direction, looked up when the task was read
            emails = (
                {e["ActivityId"]: mapping.email_fields(e) for e in org.snapshot(mapping.EMAIL_STREAM)}
                if sobject == "Task"
                else {}
            )
            for record_id, record in sorted(in_org.items()):
                if skip is not None and skip(sobject, record_id):
                    continue
                row = stored.get(record_id)
                if row is None:
                    problems.append(f"{sobject} {record_id} is missing (org: {record['SystemModstamp']})")
                    continue
                raw = {name: record.get(name) for name in fields}
                if record_id in emails and record.get("TaskSubtype") in mapping.EMAIL_SUBTYPES:
                    raw[mapping.EMAIL_KEY] = emails[record_id]
                if row.raw != raw:
                    diff = {k: (row.raw.get(k), v) for k, v in raw.items() if row.raw.get(k) != v}
                    problems.append(f"{sobject} {record_id} differs (stored, org): {diff}")
                deleted, stamp = bool(record.get("IsDeleted")), parse_datetime(record["SystemModstamp"])
                if row.is_deleted != deleted or row.modified_at != stamp:
                    problems.append(
                        f"{sobject} {record_id}: stored deleted={row.is_deleted} at {row.modified_at},"
                        f" org deleted={deleted} at {stamp}"
                    )
                for column, value in _references(sobject, record).items():
                    if getattr(row, column) != value:
                        problems.append(f"{sobject} {record_id}.{column}: stored {getattr(row, column)}, org {value}")
                if contacts and stored_contacts.get(record_id, set()) != contacts[record_id]:
                    problems.append(
                        f"{sobject} {record_id} contacts: stored {sorted(stored_contacts.get(record_id, ()))},"
                        f" org {sorted(contacts[record_id])}"
                    )
            for record_id, row in sorted(stored.items()):
                if skip is not None and skip(sobject, record_id):
                    continue
                if record_id not in in_org and not row.is_deleted:
                    problems.append(f"{sobject} {record_id} is gone from the org (purged) but stored live")
    return problems


# -- the test ------------------------------------------------------------------------------------------------
@pytest.fixture
def one_server(tmp_path: Path) -> Iterator[tuple[SandboxServer, DistinctStampOrg]]:
    """One server for the whole test; every sequence resets its org."""
    org = DistinctStampOrg(BASE)
    server = SandboxServer(org, cert_dir=tmp_path / "sandbox")
    with server:
        yield server, org


@pytest.mark.slow
def test_the_local_copy_follows_random_changes_faults_and_kills(
    engine: Engine,
    one_server: tuple[SandboxServer, DistinctStampOrg],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    COUNTS.clear()
    SalesforceSyncMachine.engine = engine
    SalesforceSyncMachine.server, SalesforceSyncMachine.org = one_server
    started = time.monotonic()
    try:
        run_state_machine_as_test(SalesforceSyncMachine, settings=BUDGET)
    finally:
        seconds = time.monotonic() - started
        line = (
            f"{COUNTS['sequences']} sequences, {COUNTS['steps']} steps ({COUNTS['syncs']} syncs,"
            f" {COUNTS['checks']} checks) in {seconds:.0f} s; budget {EXAMPLES} examples x up to {STEPS} steps"
        )
        (tmp_path / "stateful-budget.txt").write_text(line + "\n", encoding="utf-8")
        for name in ("sequences", "steps", "syncs", "checks"):
            record_property(name, COUNTS[name])
        print(line)
