"""The changes the HubSpot state machine makes to a sandbox portal (``test_hubspot_stateful``), as a mixin: creates
with associations, updates, archives, restores, merges, association adds and removals, primary-company changes and
bulk updates at one instant; each is a ``Change`` drawn by Hypothesis and answers an ``Effect`` (what it did, the
records its webhook names, the records whose links changed without a new stamp). Where HubSpot re-stamps a record
for an association change, the mixin does too; everything else leaves stamps alone."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from connectors.hubspot.connector import SEARCH_LIMIT
from connectors.hubspot.mapping import ASSOCIATIONS, ENGAGEMENTS, OBJECT_STREAMS
from connectors.sandbox.hubspot_portal import HubSpotPortal, created_property, modified_property
from connectors.sandbox.hubspot_schemas import format_timestamp
from tests.conftest import ANCHOR

COUNTS: Counter[str] = Counter()  # sequences, steps, syncs, refreshes, checks, changes: what ran, for the note

OWNERS = tuple(
    k for k in ASSOCIATIONS if k in OBJECT_STREAMS
)  # the object types whose rows hold links: contacts, deals, engagements (the leads object is tested on its own)
TITLE = {
    "companies": "name",
    "contacts": "jobtitle",
    "deals": "dealname",
    "calls": "hs_call_title",
    "emails": "hs_email_subject",
    "meetings": "hs_meeting_title",
    "notes": "hs_note_body",
    "tasks": "hs_task_subject",
}
Key = tuple[str, str]  # (object type, id)


@dataclass(frozen=True)
class Change:
    """One change to the portal. ``picks`` choose the records (index modulo the candidates, in id order), ``text`` a
    new text value, ``flag`` a variant (primary company, a big bulk update), ``webhook`` when the association or
    merge webhook reaches okrsync (``WEBHOOK``)."""

    action: str
    kind: str
    picks: tuple[int, int, int]
    text: str = ""
    flag: bool = False
    webhook: str = "now"


@dataclass
class Effect:
    """What a change did: a line for the report, the records its webhook names, and the records whose links changed
    without a new stamp (only the webhook tells)."""

    done: str
    targets: dict[str, set[str]] = field(default_factory=dict)
    unstamped: list[Key] = field(default_factory=list)
    restored: list[Key] = field(default_factory=list)


INDEX = st.integers(min_value=0, max_value=999)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Cs"]), max_size=10)
# a webhook is delivered at once, late (HubSpot retries for 24 hours: it arrives before the next run, after the
# changes made meanwhile) or never
WEBHOOK = st.sampled_from(["now", "now", "late", "lost"])


def changes(
    action: str, kinds: tuple[str, ...], flag: st.SearchStrategy[bool] | None = None
) -> st.SearchStrategy[Change]:
    return st.builds(
        Change,
        action=st.just(action),
        kind=st.sampled_from(kinds),
        picks=st.tuples(INDEX, INDEX, INDEX),
        text=TEXT,
        flag=flag if flag is not None else st.booleans(),
        webhook=WEBHOOK,
    )


CREATES = changes("create", OBJECT_STREAMS)
UPDATES = changes("update", OBJECT_STREAMS)
ARCHIVES = changes("archive", OBJECT_STREAMS)
RESTORES = changes("restore", OBJECT_STREAMS)
MERGES = changes("merge", ("contacts", "companies", "deals"))
ASSOCIATES = changes("associate", OWNERS)
UNASSOCIATES = changes("unassociate", OWNERS)
PRIMARIES = changes("primary", ("contacts", "deals"))
BULKS = changes("bulk", ("calls", "contacts", "deals"), flag=st.just(False))
# what a user or another integration may do while a sync runs
ANY_CHANGE = st.one_of(CREATES, UPDATES, ARCHIVES, RESTORES, MERGES, ASSOCIATES, UNASSOCIATES, PRIMARIES, BULKS)


def _pick(rows: list[Any], index: int) -> Any:
    return rows[index % len(rows)] if rows else None


class PortalChanges:
    """The portal-side half of the machine: ``apply(change)`` makes one change."""

    portal: HubSpotPortal
    deal_template: dict[str, Any]
    stages: list[str]

    # -- the portal ----------------------------------------------------------------------------------------
    def live(self, kind: str) -> list[dict[str, Any]]:
        return self.portal.snapshot(kind)

    def stamp(self, kind: str, record_id: str) -> str | None:
        record = self.portal.get(kind, record_id)
        return None if record is None or record["archived"] else record["properties"][modified_property(kind)]

    def owner(self, index: int) -> str:
        return str(_pick([o for o in self.portal.owners if not o.get("archived")], index)["id"])

    def restamp_deal(self, deal: str) -> None:
        """HubSpot counts a deal's contacts in num_associated_contacts: changing them re-stamps the deal."""
        count = len(self.portal.associations("deals", deal, "contacts"))
        self.portal.update("deals", deal, {"num_associated_contacts": str(count)})

    def apply(self, change: Change) -> Effect:
        effect: Effect = getattr(self, f"_{change.action}")(change)
        COUNTS[f"change {change.action}"] += 1
        effect.done = f"{change.action} {change.kind}: {effect.done}"
        return effect

    def new_values(self, kind: str, change: Change, index: int) -> dict[str, Any]:
        one = change.picks[0] + index
        text = change.text or f"{kind} {one}"
        values: dict[str, Any] = {TITLE[kind]: text, "hubspot_owner_id": self.owner(one)}
        day = ANCHOR + timedelta(days=one % 60)
        if kind == "companies":
            values["domain"] = f"new{one}.example.com"
        elif kind == "contacts":
            values.update(firstname="Pat", lastname=f"Doe {one}", email=f"pat{one}@example.com")
        elif kind == "deals":
            values = {**self.deal_template, **values, "dealstage": _pick(self.stages, one), "amount": str(one * 10)}
        else:
            values["hs_timestamp"] = day
            if kind == "meetings":
                values.update(hs_meeting_start_time=day, hs_meeting_end_time=day + timedelta(minutes=30))
            if kind == "tasks":
                values["hs_task_status"] = "NOT_STARTED"
        return values

    def _create(self, change: Change) -> Effect:
        one, two, three = change.picks
        kind = change.kind
        values = self.new_values(kind, change, 0)
        company, deal, contact = (_pick(self.live(k), p) for k, p in (("companies", two), ("deals", three),
                                                                        ("contacts", one + two)))  # fmt: skip
        links: list[tuple[str, str]] = []
        primary = None
        if kind in OWNERS and company is not None and (kind != "contacts" or one % 4):
            links.append(("companies", company["id"]))
            if kind in ("contacts", "deals") and change.flag:
                primary = company["id"]
                if kind == "contacts":
                    values["associatedcompanyid"] = primary
        if kind in (*ENGAGEMENTS, "deals") and contact is not None and two % 3:
            links.append(("contacts", contact["id"]))
        if kind in ENGAGEMENTS and deal is not None and three % 2:
            links.append(("deals", deal["id"]))
        created = self.portal.insert(kind, values, associations=links, primary_company=primary)
        if kind == "contacts" and deal is not None and three % 2:  # a new contact of a deal: the deal's count moves
            self.portal.associate("contacts", created["id"], "deals", deal["id"])
            self.restamp_deal(deal["id"])
            links.append(("deals", deal["id"]))
        return Effect(f"{created['id']} linked to {links}{' (primary)' if primary else ''}")

    def _update(self, change: Change) -> Effect:
        one, two, three = change.picks
        kind = change.kind
        record = _pick(self.live(kind), three)
        if record is None:
            return Effect("nothing to update")
        choices: list[dict[str, Any]] = [{TITLE[kind]: change.text}, {"hubspot_owner_id": self.owner(two)}]
        if kind == "deals":
            choices += [{"dealstage": _pick(self.stages, two)}, {"amount": str(one * 7), "closedate": ANCHOR}]
        if kind == "companies":
            choices.append({"industry": change.text or None})
        if kind == "tasks":
            choices.append({"hs_task_status": "COMPLETED"})
        values = choices[one % len(choices)]
        self.portal.update(kind, record["id"], values)
        return Effect(f"{record['id']} {values}")

    def _archive(self, change: Change) -> Effect:
        record = _pick(self.live(change.kind), change.picks[0])
        if record is None:
            return Effect("nothing to archive")
        self.portal.archive(change.kind, record["id"])
        return Effect(record["id"])

    def _restore(self, change: Change) -> Effect:
        """A user restores an archived record (HubSpot's recycle bin): same id, stamp unchanged, so only its
        ``*.restore`` webhook tells; the worker's refresh then re-reads the records linked to it too."""
        record = _pick(self.portal.snapshot(change.kind, archived=True), change.picks[0])
        if record is None:
            return Effect("nothing archived")
        self.portal.restore(change.kind, record["id"])
        return Effect(record["id"], {change.kind: {record["id"]}}, restored=[(change.kind, record["id"])])

    def _merge(self, change: Change) -> Effect:
        ids = [r["id"] for r in self.live(change.kind)]
        if len(ids) < 2:
            return Effect("fewer than two records")
        primary = _pick(ids, change.picks[0])
        merged = _pick([i for i in ids if i != primary], change.picks[1])
        new = self.portal.merge(change.kind, primary, merged)["id"]
        # the merge webhook names the old ids and the new one; an incremental run sees the new record without it
        return Effect(f"{merged} into {primary}: {new}", {change.kind: {primary, merged, new}})

    def _link_change(self, change: Change, owner: str, to_kind: str, target: str, *, removed: bool) -> Effect:
        """The webhook names both ends; the link is stored with the owner: is it re-stamped?"""
        kind = change.kind
        if kind == "deals" and to_kind == "contacts":
            self.restamp_deal(owner)
        stamped = (kind == "deals" and to_kind == "contacts") or (
            kind == "contacts" and change.flag and not removed and to_kind == "companies"
        )
        primary = " (primary)" if change.flag and not removed and to_kind == "companies" else ""
        return Effect(
            f"{'-' if removed else '+'} {owner} ↔ {to_kind} {target}{primary}{'' if stamped else ', unstamped'}",
            {kind: {owner}, to_kind: {target}},
            [] if stamped else [(kind, owner)],
        )

    def _associate(self, change: Change) -> Effect:
        one, two, three = change.picks
        to_kind = _pick(list(ASSOCIATIONS[change.kind]), two)
        owner, target = _pick(self.live(change.kind), one), _pick(self.live(to_kind), three)
        if owner is None or target is None:
            return Effect("no records to link")
        primary = change.flag and to_kind == "companies" and change.kind in ("contacts", "deals")
        self.portal.associate(change.kind, owner["id"], to_kind, target["id"], primary=primary)
        return self._link_change(change, owner["id"], to_kind, target["id"], removed=False)

    def _unassociate(self, change: Change) -> Effect:
        one, two, three = change.picks
        to_kind = _pick(list(ASSOCIATIONS[change.kind]), two)
        linked = [r for r in self.live(change.kind) if self.portal.associations(change.kind, r["id"], to_kind)]
        owner = _pick(linked, one)
        if owner is None:
            return Effect(f"no record with {to_kind}")
        target = str(_pick(self.portal.associations(change.kind, owner["id"], to_kind), three)[0])
        self.portal.unassociate(change.kind, owner["id"], to_kind, target)
        return self._link_change(change, owner["id"], to_kind, target, removed=True)

    def _primary(self, change: Change) -> Effect:
        one, _two, three = change.picks
        linked = [r for r in self.live(change.kind) if self.portal.associations(change.kind, r["id"], "companies")]
        record = _pick(linked, one)
        if record is None:
            return Effect("no record with companies")
        company = str(_pick(self.portal.associations(change.kind, record["id"], "companies"), three)[0])
        self.portal.set_primary_company(change.kind, record["id"], company)  # a contact's is re-stamped
        stamped = change.kind == "contacts"
        return Effect(
            f"{record['id']} primary company {company}{'' if stamped else ', unstamped'}",
            {change.kind: {record["id"]}, "companies": {company}},
            [] if stamped else [(change.kind, record["id"])],
        )

    def _bulk(self, change: Change) -> Effect:
        """Many records at one instant (an import, a mass update); ``flag``: more than a search page of them."""
        one, two, three = change.picks
        kind, stamp = change.kind, self.portal.now()
        live = self.live(kind)
        company = _pick(self.live("companies"), two)
        imported = max(0, SEARCH_LIMIT + 1 + one % 40 - len(live)) if change.flag else 0
        for index in range(imported):
            values = self.new_values(kind, change, index)
            values.update(dict.fromkeys((created_property(kind), modified_property(kind)), format_timestamp(stamp)))
            links = [("companies", company["id"])] if company is not None else []
            self.portal.insert(kind, values, associations=links)
        chosen = live if change.flag else (live + live)[two % max(len(live), 1) :][: 1 + three % max(len(live), 1)]
        for record in chosen:
            self.portal.update(kind, record["id"], {TITLE[kind]: change.text or "bulk"}, modified_at=stamp)
        return Effect(f"{imported} imported and {len(chosen)} updated at {format_timestamp(stamp)}")

    def state(self) -> dict[Key, tuple[Any, ...]]:
        """Every record, archived ones too: its stamp, whether archived, its links and primary company."""
        found: dict[Key, tuple[Any, ...]] = {}
        for kind in OBJECT_STREAMS:
            for archived in (False, True):
                for record in self.portal.snapshot(kind, archived=archived):
                    links = frozenset(
                        (to_kind, str(to_id))
                        for to_kind in OBJECT_STREAMS
                        for to_id, _type in self.portal.associations(kind, record["id"], to_kind)
                    )
                    primary = self.portal.primary_company(kind, record["id"]) if kind in ("contacts", "deals") else None
                    found[(kind, record["id"])] = (record["updatedAt"], archived, links, primary)
        return found

    @staticmethod
    def changed_between(before: dict[Key, tuple[Any, ...]], after: dict[Key, tuple[Any, ...]]) -> set[Key]:
        """The records that changed (created, archived, merged away, re-stamped, linked) and every record linked to
        one of them, before or after."""
        changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        linked = {link for key in changed for side in (before, after) if key in side for link in side[key][2]}
        return changed | linked
