"""Deterministic generator of a realistic quarter of a B2B sales team, as Salesforce records.

`generate_org(seed=..., anchor=...)` returns ``{"User": [...], "Account": [...], ...}`` whose values are
exactly what the REST API returns (datetimes '2026-07-01T09:30:00.000+0000', dates '2026-07-15', numbers,
booleans, None).
The same arguments always give the same data: everything is drawn from one ``random.Random(seed)``.

Activity timestamps are minutes counted from midnight of the quarter's first day, formatted from precomputed
day prefixes, so a million activities take seconds rather than minutes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import holidays as holiday_tables

from connectors.sandbox.salesforce_relations import RELATION_OBJECTS, RELATIONS_OF, relation_row
from connectors.sandbox.schema import SOBJECTS, format_date, format_datetime, make_id

QUARTER_DAYS = 91
IdFactory = Callable[[str], str]

_FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Felix",
    "Greta",
    "Hannes",
    "Ines",
    "Jonas",
    "Katrin",
    "Lukas",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Rita",
    "Sven",
    "Tara",
    "Uwe",
    "Vera",
    "Wim",
    "Yara",
    "Zoe",
]
_LAST = [
    "Berger",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hoffmann",
    "Ivanova",
    "Jansen",
    "Keller",
    "Lang",
    "Moreau",
    "Novak",
    "Olsen",
    "Peters",
    "Quinn",
    "Richter",
    "Schulz",
    "Thomas",
    "Urban",
    "Vogel",
    "Weber",
    "Young",
    "Zimmer",
]
_WORDS = [
    "Nordwind",
    "Alpen",
    "Rhein",
    "Helix",
    "Vanta",
    "Kora",
    "Lumen",
    "Orbit",
    "Pioneer",
    "Quartz",
    "Sigma",
    "Tessel",
    "Umbra",
    "Vireo",
    "Weiss",
    "Axon",
    "Borealis",
    "Cobalt",
    "Delta",
    "Ember",
    "Fjord",
    "Granit",
]
_SECTORS = [
    ("Logistics", "Transportation"),
    ("Software", "Technology"),
    ("Bank", "Banking"),
    ("Pharma", "Healthcare"),
    ("Energie", "Energy"),
    ("Retail", "Retail"),
    ("Maschinenbau", "Manufacturing"),
    ("Versicherung", "Insurance"),
    ("Telecom", "Telecommunications"),
    ("Foods", "Food & Beverage"),
]
_COUNTRIES = [
    "Germany",
    "Germany",
    "Germany",
    "Austria",
    "Switzerland",
    "Netherlands",
    "France",
    "United Kingdom",
]
_TITLES = [
    "CEO",
    "CFO",
    "CTO",
    "Head of Operations",
    "Procurement Manager",
    "IT Director",
    "VP Sales",
    "Project Lead",
    "Controller",
    "Team Lead",
]
_ROLES = [
    "Decision Maker",
    "Economic Buyer",
    "Technical Buyer",
    "Influencer",
    "Evaluator",
    "Executive Sponsor",
    "Business User",
]
_PRODUCTS = [
    "Platform",
    "Expansion",
    "Renewal",
    "Pilot",
    "Analytics Add-on",
    "Enterprise Licence",
    "Services",
]
# (StageName, Probability, ForecastCategoryName, IsClosed, IsWon, weight)
STAGES = [
    ("Prospecting", 10, "Pipeline", False, False, 14),
    ("Qualification", 10, "Pipeline", False, False, 14),
    ("Needs Analysis", 20, "Pipeline", False, False, 12),
    ("Proposal/Price Quote", 75, "Best Case", False, False, 12),
    ("Negotiation/Review", 90, "Commit", False, False, 8),
    ("Closed Won", 100, "Closed", True, True, 20),
    ("Closed Lost", 0, "Omitted", True, False, 20),
]
_SEGMENTS = {"SMB": (5_000, 40_000), "Mid-Market": (30_000, 150_000), "Enterprise": (120_000, 900_000)}
_NEXT_STEPS = [
    "Send proposal",
    "Schedule demo",
    "Align with procurement",
    "Security review",
    "Call champion",
    "Prepare business case",
    "Negotiate terms",
]
_CALL_SUBJECTS = ["Call", "Discovery call", "Follow-up call", "Check-in call", "Pricing call"]
_EMAIL_SUBJECTS = ["Email: Follow-up", "Email: Proposal", "Email: Meeting recap", "Email: Introduction"]
_TASK_SUBJECTS = ["Prepare QBR deck", "Update opportunity", "Send contract", "Research account", "Follow up"]
_EVENT_SUBJECTS = ["Meeting", "Demo", "Quarterly business review", "Workshop", "Executive alignment"]
_DISPOSITIONS = ["Connected", "Connected", "Left voicemail", "No answer", "Meeting booked"]


class _Clock:
    """Formats minutes since midnight of the quarter's first day; knows the working days of the quarter."""

    def __init__(self, anchor: datetime) -> None:
        self.anchor = anchor
        start = anchor - timedelta(days=QUARTER_DAYS)
        self.base = start.replace(hour=0, minute=0, second=0, microsecond=0)
        self.first = int((start - self.base).total_seconds() // 60)
        self.last = int((anchor - self.base).total_seconds() // 60) - 1
        days = (anchor - self.base).days + 1
        self.day_prefix = [(self.base + timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(days)]
        self.day_date = [prefix[:10] for prefix in self.day_prefix]
        self.workdays = [d for d in range(days) if (self.base + timedelta(days=d)).weekday() < 5]

    def stamp(self, minute: int, second: int = 0) -> str:
        day, rest = divmod(minute, 1440)
        return f"{self.day_prefix[day]}{rest // 60:02d}:{rest % 60:02d}:{second:02d}.000+0000"

    def working_minute(self, rnd: random.Random) -> int:
        minute = rnd.choice(self.workdays) * 1440 + 480 + int(rnd.random() * 600)
        return min(max(minute, self.first), self.last)

    def later(self, rnd: random.Random, minute: int) -> int:
        """A minute at or after `minute`, not after the anchor (for LastModifiedDate/SystemModstamp)."""
        if rnd.random() < 0.8:
            return minute
        return minute + int(rnd.random() * (self.last - minute + 1))

    def datetime_at(self, minute: int) -> datetime:
        return self.base + timedelta(minutes=minute)


def _audit(record: dict, created: str, modified: str) -> dict:
    record["CreatedDate"] = created
    record["LastModifiedDate"] = modified
    record["SystemModstamp"] = modified
    return record


def generate_org(
    *,
    seed: int = 42,
    accounts: int = 400,
    opportunities: int = 1000,
    activities: int = 20000,
    anchor: datetime | None = None,
    shared_activities: bool = False,
) -> dict[str, list[dict]]:
    """Generate users, accounts, contacts, opportunities, contact roles, tasks and events for one quarter.

    The quarter ends at `anchor` (default: now in UTC, truncated to the minute). Same arguments, same data.
    With `shared_activities`, also TaskRelation and EventRelation rows: each activity's WhoId and WhatId, and for
    about one activity in five one or two more contacts of the same account. They are drawn from a random
    generator of their own, so every other record is exactly what it is without them.
    """
    if anchor is None:
        anchor = datetime.now(UTC).replace(second=0, microsecond=0)
    elif anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    anchor = anchor.astimezone(UTC)
    rnd = random.Random(seed)
    clock = _Clock(anchor)
    counters = {name: 0 for name in SOBJECTS}

    def new_id(sobject: str) -> str:
        counters[sobject] += 1
        return make_id(SOBJECTS[sobject].key_prefix, counters[sobject])

    def long_ago(max_days: int) -> str:
        days = QUARTER_DAYS + rnd.randint(1, max_days)
        return format_datetime(anchor - timedelta(days=days, minutes=rnd.randint(0, 600)))

    users = _users(new_id, long_ago)
    reps, kams = users[1:9], users[9:]
    account_rows, contacts_by_account, contacts = _accounts(rnd, clock, new_id, long_ago, accounts, reps, kams)
    opps, roles = _opportunities(rnd, clock, new_id, opportunities, account_rows, contacts_by_account)
    tasks, events = _activities(rnd, clock, new_id, activities, account_rows, contacts_by_account, opps, reps)
    org = {
        "User": users,
        "Account": account_rows,
        "Contact": contacts,
        "Opportunity": opps,
        "OpportunityContactRole": roles,
        "Task": tasks,
        "Event": events,
    }
    # Leads, the team's first touch on them, and customer e-mails out of hours: a random generator of their own, and
    # the tasks they add come after all others, so every other record is exactly what it was before leads
    leads, outbound = _leads(random.Random(seed + 3), clock, new_id, tasks, reps, account_rows, contacts_by_account)
    org["Lead"] = leads
    # Enhanced Email: each e-mail task has its EmailMessage, from a random generator of its own (so every other
    # record is exactly what it was before e-mails had one)
    org["EmailMessage"] = _email_messages(random.Random(seed + 2), tasks, users, [*contacts, *leads], outbound)
    if shared_activities:
        org.update(_relations(random.Random(seed + 1), {"Task": tasks, "Event": events}, contacts_by_account))
    # Email-to-Case: customers writing to a case, and the case owner's answers, as e-mails without a task; a random
    # generator of their own, and the e-mails they add come after all others, so every other record stays as it was
    org["Case"], case_emails = _cases(random.Random(seed + 4), clock, new_id, users, account_rows, contacts_by_account)
    org["EmailMessage"] += _renumbered(case_emails, len(org["EmailMessage"]))
    return org


INCOMING_SHARE = 0.35  # of the e-mails logged on deals and accounts, the customer's; the rest the team's


def _email_messages(
    rnd: random.Random,
    tasks: list[dict],
    users: list[dict],
    contacts: list[dict],
    known: dict[str, bool] | None = None,
) -> list[dict]:
    """The EmailMessage of every e-mail task, as Enhanced Email stores it: ActivityId the task, RelatedToId its
    WhatId, MessageDate its completion, Incoming for about a third (the customer wrote: from the contact to the
    owner, Status 1 Read), else sent by the owner to the contact (Status 3 Sent)."""
    prefix = SOBJECTS["EmailMessage"].key_prefix
    email_of = {u["Id"]: (u["Email"], u["Name"]) for u in users}
    email_of.update({c["Id"]: (c["Email"], f"{c['FirstName']} {c['LastName']}") for c in contacts})
    rows: list[dict] = []
    for task in tasks:
        if task.get("TaskSubtype") != "Email":
            continue
        incoming = known[task["Id"]] if known and task["Id"] in known else rnd.random() < INCOMING_SHARE
        owner, owner_name = email_of.get(task["OwnerId"], (None, None))
        contact, contact_name = email_of.get(task["WhoId"] or "", (None, None))
        sender, sender_name, recipient = (contact, contact_name, owner) if incoming else (owner, owner_name, contact)
        rows.append(
            {
                "Id": make_id(prefix, len(rows) + 1),
                "ActivityId": task["Id"],
                "RelatedToId": task["WhatId"],
                "ParentId": None,
                "Incoming": incoming,
                "MessageDate": task["CompletedDateTime"] or task["CreatedDate"],
                "FromAddress": sender,
                "FromName": sender_name,
                "ToAddress": recipient,
                "CcAddress": None,
                "Subject": task["Subject"],
                "Status": "1" if incoming else "3",
                "CreatedById": task["OwnerId"],  # logged by the task's owner (their e-mail client or Salesforce)
                "CreatedDate": task["CreatedDate"],
                "LastModifiedDate": task["LastModifiedDate"],
                "SystemModstamp": task["SystemModstamp"],
                "IsDeleted": False,
            }
        )
    return rows


SUPPORT_ADDRESS = "support@sandbox.okrsync.dev"  # the Email-to-Case routing address customers write to
_CASE_SUBJECTS = ["Invoice question", "Delivery delayed", "Login problem", "Change of address", "Contract terms"]


def _cases(
    rnd: random.Random,
    clock: _Clock,
    new_id: IdFactory,
    users: list[dict],
    accounts: list[dict],
    contacts_by_account: dict[str, list[dict]],
) -> tuple[list[dict], list[dict]]:
    """Email-to-Case threads: a customer (a contact of an account) writes to the support address at any hour, which
    opens a case owned by the account's owner; the customer may write again; most messages are answered by the case
    owner, some within business hours, some in the evening, some not yet. Every e-mail is an EmailMessage without a
    task ("ActivityId can only be specified for emails on cases", and an inbound case e-mail creates a Task only if
    the routing address says so), ParentId and RelatedToId the case:
    https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_emailmessage.htm
    An inbound one is created by Email-to-Case's context user (the first user here, the org's admin); an answer by
    the owner who sends it (CreatedById). Returns the cases and their e-mails (Ids numbered by the caller)."""
    email_of = {u["Id"]: (u["Email"], u["Name"]) for u in users}
    context_user = users[0]["Id"]
    cases: list[dict] = []
    emails: list[dict] = []

    def email(minute: int, case: dict, contact: dict, *, incoming: bool) -> None:
        stamp = clock.stamp(minute, int(rnd.random() * 60))
        owner, owner_name = email_of[case["OwnerId"]]
        emails.append(
            {
                "Id": None,
                "ActivityId": None,
                "RelatedToId": case["Id"],
                "ParentId": case["Id"],
                "Incoming": incoming,
                "MessageDate": stamp,
                "FromAddress": contact["Email"] if incoming else owner,
                "FromName": contact["Name"] if incoming else owner_name,
                "ToAddress": SUPPORT_ADDRESS if incoming else contact["Email"],
                "CcAddress": None,
                "Subject": case["Subject"] if incoming else f"Re: {case['Subject']}",
                "Status": "1" if incoming else "3",
                "CreatedById": context_user if incoming else case["OwnerId"],
                "CreatedDate": stamp,
                "LastModifiedDate": stamp,
                "SystemModstamp": stamp,
                "IsDeleted": False,
            }
        )
        case["LastModifiedDate"] = case["SystemModstamp"] = max(case["SystemModstamp"], stamp)

    for _ in range(max(8, len(accounts) // 3)):
        account = accounts[int(rnd.random() * len(accounts))]
        people = contacts_by_account[account["Id"]]
        contact = people[int(rnd.random() * len(people))]
        opened = clock.first + int(rnd.random() * (clock.last - clock.first - 1440))
        stamp = clock.stamp(opened)
        case = {
            "Id": new_id("Case"),
            "AccountId": account["Id"],
            "ContactId": contact["Id"],
            "OwnerId": account["OwnerId"],
            "Subject": rnd.choice(_CASE_SUBJECTS),
            "Status": "New",
            "Origin": "Email",
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
            "IsDeleted": False,
        }
        cases.append(case)
        minute = opened
        for turn in range(1 + int(rnd.random() * 3)):
            if turn and (minute := minute + 60 + int(rnd.random() * 3 * 1440)) > clock.last:
                break
            email(minute, case, contact, incoming=True)
            answer = rnd.random()
            if answer < 0.25:  # not answered (yet)
                break
            if answer < 0.6:  # soon, whenever that is: in or out of business hours
                minute += 20 + int(rnd.random() * 300)
            else:  # the next day, in the evening: after business hours
                minute = (minute // 1440 + 1) * 1440 + 1140 + int(rnd.random() * 180)  # 19:00–22:00 UTC
            if minute > clock.last:
                break
            email(minute, case, contact, incoming=False)
            case["Status"] = "Working"
    return cases, emails


def _renumbered(rows: list[dict], before: int) -> list[dict]:
    """``rows`` with EmailMessage Ids numbered on from the ``before`` e-mails already made."""
    prefix = SOBJECTS["EmailMessage"].key_prefix
    for number, row in enumerate(rows, start=before + 1):
        row["Id"] = make_id(prefix, number)
    return rows


_LEAD_SOURCES = ["Web", "Web", "Phone Inquiry", "Partner Referral", "Trade Show"]
_LEAD_OPEN = ["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"]


def _leads(
    rnd: random.Random,
    clock: _Clock,
    new_id: IdFactory,
    tasks: list[dict],
    reps: list[dict],
    accounts: list[dict],
    contacts_by_account: dict[str, list[dict]],
) -> tuple[list[dict], dict[str, bool]]:
    """Leads of the quarter, arriving at any hour (web forms do not keep office hours), and the tasks that go with
    them, appended to ``tasks``: the owner's first call or e-mail on a lead (logged on the lead; on the contact and
    account for a converted one, where Salesforce's conversion moves it), for most leads; and customer e-mails
    written in the evening or at the weekend, answered the next working morning or not yet. Returns the leads and
    the direction (Incoming) of the e-mails added."""
    count = max(30, len(accounts) // 2)
    outbound: dict[str, bool] = {}
    leads: list[dict] = []
    free = list(accounts)  # accounts no lead was converted into yet, in order (a list rebuilt per lead was quadratic)
    last_activity: dict[str, str] = {}

    def task(
        minute: int, owner: str, who: str, what: str | None, account: str | None, *, email: bool, incoming: bool
    ) -> None:
        stamp = clock.stamp(minute, int(rnd.random() * 60))
        record: dict[str, Any] = {
            "Id": new_id("Task"),
            "Subject": ("Re: your enquiry" if not incoming else "Question about our order") if email else "First call",
            "TaskSubtype": "Email" if email else "Call",
            "Type": "Email" if email else "Call",
            "Status": "Completed",
            "Priority": "Normal",
            "ActivityDate": clock.day_date[minute // 1440],
            "CompletedDateTime": stamp,
            "CallDurationInSeconds": None if email else int(60 + rnd.random() * 900),
            "CallType": None if email else ("Inbound" if incoming else "Outbound"),
            "CallDisposition": None if email else "Connected",
            "Description": None,
            "OwnerId": owner,
            "WhoId": who,
            "WhatId": what,
            "AccountId": account,
            "IsClosed": True,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
            "IsDeleted": False,
        }
        tasks.append(record)
        if email:
            outbound[record["Id"]] = incoming
        day = str(record["ActivityDate"])
        for target in (what, account):
            if target and last_activity.get(target, "") < day:
                last_activity[target] = day

    for index in range(count):
        owner = reps[int(rnd.random() * len(reps))]["Id"]
        created = clock.first + int(rnd.random() * (clock.last - clock.first - 60))
        first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
        lead = {
            "Id": new_id("Lead"),
            "FirstName": first,
            "LastName": last,
            "Name": f"{first} {last}",
            "Email": f"{first.lower()}.{last.lower()}.lead{index + 1}@example.org",
            "Company": f"{rnd.choice(_WORDS)} {rnd.choice(_SECTORS)[0]} Lead {index + 1}",
            "Status": "Open - Not Contacted",
            "LeadSource": rnd.choice(_LEAD_SOURCES),
            "OwnerId": owner,
            "IsConverted": False,
            "ConvertedDate": None,
            "ConvertedAccountId": None,
            "ConvertedContactId": None,
            "ConvertedOpportunityId": None,
            "IsDeleted": False,
        }
        touched = created + int(rnd.random() * rnd.choice((120, 600, 3000, 6000)))
        answered = rnd.random() < 0.8 and touched <= clock.last
        if answered and free and rnd.random() < 0.4:  # converted: the person is a contact of an account now
            account = free.pop(int(rnd.random() * len(free)))
            contact = contacts_by_account[account["Id"]][0]
            converted = min(clock.last, touched + int(rnd.random() * 4 * 1440))
            first, last = contact["FirstName"], contact["LastName"]  # converted into this person's contact
            lead.update(
                FirstName=first,
                LastName=last,
                Name=contact["Name"],
                Email=contact["Email"],
                Status="Closed - Converted",
                IsConverted=True,
                ConvertedDate=clock.day_date[converted // 1440],
                ConvertedAccountId=account["Id"],
                ConvertedContactId=contact["Id"],
            )
            task(touched, owner, contact["Id"], account["Id"], account["Id"], email=rnd.random() < 0.5, incoming=False)
            modified = converted
        elif answered:
            lead["Status"] = _LEAD_OPEN[1 + int(rnd.random() * 2)]
            task(touched, owner, lead["Id"], None, None, email=rnd.random() < 0.5, incoming=False)
            modified = touched
        else:
            modified = created
        leads.append(_audit(lead, clock.stamp(created), clock.stamp(modified, 59)))

    # customers who write in the evening or at the weekend: inquiries that wait for the next opening
    weekend = [d for d in range(len(clock.day_date)) if d not in set(clock.workdays)]
    for _ in range(max(4, len(accounts) // 5)):
        account = accounts[int(rnd.random() * len(accounts))]
        contact = contacts_by_account[account["Id"]][int(rnd.random() * len(contacts_by_account[account["Id"]]))]
        if weekend and rnd.random() < 0.5:
            minute = rnd.choice(weekend) * 1440 + 540 + int(rnd.random() * 600)
        else:
            minute = rnd.choice(clock.workdays) * 1440 + 1140 + int(rnd.random() * 200)  # 19:00–22:20 UTC
        if not clock.first <= minute <= clock.last:
            continue
        task(minute, account["OwnerId"], contact["Id"], account["Id"], account["Id"], email=True, incoming=True)
        later = [d for d in clock.workdays if d * 1440 > minute]
        if later and rnd.random() < 0.75:
            reply = later[0] * 1440 + 360 + int(rnd.random() * 240)  # 06:00–10:00 UTC on the next working day
            if reply <= clock.last:
                task(reply, account["OwnerId"], contact["Id"], account["Id"], account["Id"], email=True, incoming=False)
    # and customers who write on a public holiday of the team's city (Berlin), answered the next open day: whenever
    # the quarter holds one (Q3 has none on a weekday in 2026; Q2 has three)
    first_day = clock.base.date()
    closed = holiday_tables.country_holidays(
        "DE", subdiv="BE", years=range(first_day.year, first_day.year + 2), language="en_US"
    )
    open_days = [d for d in clock.workdays if first_day + timedelta(days=d) not in closed]
    for day in range(len(clock.day_date)):
        if first_day + timedelta(days=day) not in closed or day not in set(clock.workdays):
            continue
        for _ in range(2):
            account = accounts[int(rnd.random() * len(accounts))]
            people = contacts_by_account[account["Id"]]
            contact = people[int(rnd.random() * len(people))]
            minute = day * 1440 + 420 + int(rnd.random() * 300)  # 07:00–12:00 UTC
            if not clock.first <= minute <= clock.last:
                continue
            task(minute, account["OwnerId"], contact["Id"], account["Id"], account["Id"], email=True, incoming=True)
            later = [d for d in open_days if d > day]
            if later and (reply := later[0] * 1440 + 400 + int(rnd.random() * 300)) <= clock.last:
                task(reply, account["OwnerId"], contact["Id"], account["Id"], account["Id"], email=True, incoming=False)
    for row in accounts:
        if last_activity.get(row["Id"], "") > (row["LastActivityDate"] or ""):
            row["LastActivityDate"] = last_activity[row["Id"]]
    return leads, outbound


def _relations(
    rnd: random.Random, activities: dict[str, list[dict]], contacts_by_account: dict[str, list[dict]]
) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {name: [] for name in RELATION_OBJECTS}
    for sobject, records in activities.items():
        relation = RELATIONS_OF[sobject][0]
        out = rows[relation]
        prefix = RELATION_OBJECTS[relation].key_prefix
        for record in records:
            related = [record["WhoId"], record["WhatId"]]
            if record["AccountId"] and rnd.random() < 0.2:  # a task on a lead has no account (and no other contacts)
                others = [c["Id"] for c in contacts_by_account[record["AccountId"]] if c["Id"] != record["WhoId"]]
                related += rnd.sample(others, min(len(others), rnd.randint(1, 2)))
            for relation_id in dict.fromkeys(r for r in related if r):
                out.append(
                    relation_row(
                        relation,
                        record_id=make_id(prefix, len(out) + 1),
                        parent_id=record["Id"],
                        relation_id=relation_id,
                        account_id=record["AccountId"],
                        stamp=record["CreatedDate"],
                    )
                )
    return rows


def _users(new_id: IdFactory, long_ago: Callable[[int], str]) -> list[dict]:
    people = [("Maria", "Schneider", "Head of Sales")]
    people += [(_FIRST[i * 3 % 24], _LAST[i * 5 % 24], "Account Executive") for i in range(8)]
    people += [("Katrin", "Lindqvist", "Key Account Manager"), ("Tobias", "Marchetti", "Key Account Manager")]
    users: list[dict] = []
    for first, last, title in people:
        created = long_ago(400)
        users.append(
            _audit(
                {
                    "Id": new_id("User"),
                    "Name": f"{first} {last}",
                    "FirstName": first,
                    "LastName": last,
                    "Email": f"{first.lower()}.{last.lower()}@sandbox.okrsync.dev",
                    "Title": title,
                    "IsActive": True,
                    "ManagerId": users[0]["Id"] if users else None,
                },
                created,
                created,
            )
        )
    return users


def _accounts(
    rnd: random.Random,
    clock: _Clock,
    new_id: IdFactory,
    long_ago: Callable[[int], str],
    count: int,
    reps: list[dict],
    kams: list[dict],
) -> tuple[list[dict], dict[str, list[dict]], list[dict]]:
    accounts: list[dict] = []
    contacts: list[dict] = []
    contacts_by_account: dict[str, list[dict]] = {}
    for index in range(count):
        sector, industry = rnd.choice(_SECTORS)
        key_account = rnd.random() < 0.1
        tier = "A" if key_account or rnd.random() < 0.15 else rnd.choice(["B", "B", "C", "C", "C"])
        employees = rnd.choice([20, 50, 120, 300, 800, 2500, 9000]) + rnd.randint(0, 50)
        owner = rnd.choice(kams) if key_account else rnd.choice(reps)
        created = long_ago(700)
        account = _audit(
            {
                "Id": new_id("Account"),
                "Name": f"{rnd.choice(_WORDS)} {sector} {index + 1}",
                "OwnerId": owner["Id"],
                "Type": rnd.choice(["Customer - Direct", "Customer - Direct", "Prospect", "Customer - Channel"]),
                "Industry": industry,
                "AnnualRevenue": float(employees * rnd.randint(80, 250) * 1000),
                "NumberOfEmployees": employees,
                "BillingCountry": rnd.choice(_COUNTRIES),
                "ParentId": rnd.choice(accounts)["Id"] if accounts and rnd.random() < 0.05 else None,
                "LastActivityDate": None,
            },
            created,
            created,
        )
        account.update({"IsDeleted": False, "Key_Account__c": key_account, "Tier__c": tier})
        accounts.append(account)
        own_contacts: list[dict] = []
        contacts_by_account[account["Id"]] = own_contacts
        for _ in range(rnd.randint(2, 5)):
            first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
            contact = _audit(
                {
                    "Id": new_id("Contact"),
                    "FirstName": first,
                    "LastName": last,
                    "Name": f"{first} {last}",
                    "Email": f"{first.lower()}.{last.lower()}{len(contacts) + 1}@example.com",
                    "Title": rnd.choice(_TITLES),
                    "AccountId": account["Id"],
                    "OwnerId": owner["Id"],
                },
                created,
                clock.stamp(clock.later(rnd, clock.first)) if rnd.random() < 0.2 else created,
            )
            contact["IsDeleted"] = False
            own_contacts.append(contact)
            contacts.append(contact)
    return accounts, contacts_by_account, contacts


def _opportunities(
    rnd: random.Random,
    clock: _Clock,
    new_id: IdFactory,
    count: int,
    accounts: list[dict],
    contacts_by_account: dict[str, list[dict]],
) -> tuple[list[dict], list[dict]]:
    opps: list[dict] = []
    roles: list[dict] = []
    weights = [stage[5] for stage in STAGES]
    today = clock.anchor.date()
    for _ in range(count):
        account = rnd.choice(accounts)
        stage, probability, forecast, closed, won, _weight = rnd.choices(STAGES, weights)[0]
        employees = account["NumberOfEmployees"]
        segment = "Enterprise" if employees > 2000 else "Mid-Market" if employees > 200 else "SMB"
        low, high = _SEGMENTS[segment]
        created_minute = clock.working_minute(rnd)
        created = (
            clock.stamp(created_minute)
            if rnd.random() < 0.6
            else format_datetime(clock.datetime_at(created_minute) - timedelta(days=rnd.randint(1, 180)))
        )
        modified_minute = clock.later(rnd, created_minute)
        if closed:
            close_date = clock.day_date[rnd.randrange(len(clock.day_date) - 1)]
        elif rnd.random() < 0.15:  # overdue: close date in the past on an open deal
            close_date = format_date(today - timedelta(days=rnd.randint(1, 40)))
        else:
            close_date = format_date(today + timedelta(days=rnd.randint(1, 120)))
        stage_change = clock.stamp(clock.later(rnd, created_minute) if rnd.random() < 0.5 else created_minute)
        opp = _audit(
            {
                "Id": new_id("Opportunity"),
                "Name": f"{account['Name']} - {rnd.choice(_PRODUCTS)}",
                "AccountId": account["Id"],
                "OwnerId": account["OwnerId"],
                "StageName": stage,
                "Amount": None if rnd.random() < 0.04 else float(round(rnd.uniform(low, high), -2)),
                "Probability": float(probability),
                "CloseDate": close_date,
                "NextStep": None if rnd.random() < 0.25 else rnd.choice(_NEXT_STEPS),
                "IsClosed": closed,
                "IsWon": won,
                "ForecastCategoryName": forecast,
                "Type": rnd.choice(["New Business", "Existing Business"]),
                "LeadSource": rnd.choice(["Web", "Partner Referral", "Trade Show", "Outbound", "Customer Referral"]),
                "LastActivityDate": None,
                "LastStageChangeDate": max(stage_change, created),
                "PushCount": rnd.choices([0, 1, 2, 3, 4], [50, 25, 13, 8, 4])[0],
            },
            created,
            max(clock.stamp(modified_minute), created),
        )
        opp.update({"IsDeleted": False, "Segment__c": segment})
        opps.append(opp)
        people = contacts_by_account[account["Id"]]
        for position, contact in enumerate(rnd.sample(people, min(len(people), rnd.randint(1, 3)))):
            role = _audit(
                {
                    "Id": new_id("OpportunityContactRole"),
                    "OpportunityId": opp["Id"],
                    "ContactId": contact["Id"],
                    "Role": rnd.choice(_ROLES),
                    "IsPrimary": position == 0,
                },
                created,
                created,
            )
            role["IsDeleted"] = False
            roles.append(role)
    return opps, roles


def _activities(
    rnd: random.Random,
    clock: _Clock,
    new_id: IdFactory,
    count: int,
    accounts: list[dict],
    contacts_by_account: dict[str, list[dict]],
    opps: list[dict],
    reps: list[dict],
) -> tuple[list[dict], list[dict]]:
    tasks: list[dict] = []
    events: list[dict] = []
    opps_by_account: dict[str, list[dict]] = {}
    for opp in opps:
        opps_by_account.setdefault(opp["AccountId"], []).append(opp)
    last_activity: dict[str, str] = {}  # record id -> latest ActivityDate of a completed activity
    today_index = len(clock.day_date) - 1
    random_ = rnd.random
    for _ in range(count):
        account = accounts[int(random_() * len(accounts))]
        account_id = account["Id"]
        people = contacts_by_account[account_id]
        who = people[int(random_() * len(people))]["Id"]
        account_opps = opps_by_account.get(account_id)
        what = (
            account_opps[int(random_() * len(account_opps))]["Id"] if account_opps and random_() < 0.7 else account_id
        )
        owner = account["OwnerId"] if random_() < 0.85 else reps[int(random_() * len(reps))]["Id"]
        minute = clock.working_minute(rnd)
        second = int(random_() * 60)
        stamp = clock.stamp(minute, second)
        modified = stamp if random_() < 0.85 else clock.stamp(clock.later(rnd, minute), 59)
        day = clock.day_date[minute // 1440]
        kind = random_()
        if kind < 0.8:
            record = {
                "Id": new_id("Task"),
                "Subject": None,
                "TaskSubtype": "Task",
                "Type": None,
                "Status": "Completed",
                "Priority": "Normal",
                "ActivityDate": day,
                "CompletedDateTime": stamp,
                "CallDurationInSeconds": None,
                "CallType": None,
                "CallDisposition": None,
                "Description": None,
                "OwnerId": owner,
                "WhoId": who,
                "WhatId": what,
                "AccountId": account_id,
                "IsClosed": True,
                "CreatedDate": stamp,
                "LastModifiedDate": modified,
                "SystemModstamp": modified,
                "IsDeleted": False,
            }
            if kind < 0.45:
                disposition = _DISPOSITIONS[int(random_() * 5)]
                record.update(
                    Subject=_CALL_SUBJECTS[int(random_() * 5)],
                    TaskSubtype="Call",
                    Type="Call",
                    CallType="Outbound" if random_() < 0.75 else "Inbound",
                    CallDisposition=disposition,
                    CallDurationInSeconds=int(20 + random_() * 40)
                    if disposition in ("No answer", "Left voicemail")
                    else int(120 + random_() * 2400),
                )
            elif kind < 0.70:
                record.update(Subject=_EMAIL_SUBJECTS[int(random_() * 4)], TaskSubtype="Email", Type="Email")
            else:
                record.update(
                    Subject=_TASK_SUBJECTS[int(random_() * 5)],
                    Type="Other",
                    Priority="High" if random_() < 0.2 else "Normal",
                )
                if random_() < 0.4:  # open task, mostly due in the future
                    due = today_index + int(random_() * 30) + 1 if random_() < 0.75 else minute // 1440
                    record.update(
                        Status="Not Started" if random_() < 0.6 else "In Progress",
                        IsClosed=False,
                        CompletedDateTime=None,
                        ActivityDate=format_date(clock.base.date() + timedelta(days=due)),
                    )
            tasks.append(record)
        else:
            start_minute = minute - minute % 30
            duration = (30, 45, 60, 90)[int(random_() * 4)]
            start = clock.stamp(start_minute)
            created = clock.stamp(max(clock.first, start_minute - int(random_() * 7 * 1440)))
            end_time = clock.datetime_at(start_minute) + timedelta(minutes=duration)
            record = {
                "Id": new_id("Event"),
                "Subject": _EVENT_SUBJECTS[int(random_() * 5)],
                "Type": "Meeting",
                "EventSubtype": "Event",
                "StartDateTime": start,
                "EndDateTime": format_datetime(end_time),
                "DurationInMinutes": duration,
                "ActivityDateTime": start,
                "Description": None,
                "OwnerId": owner,
                "WhoId": who,
                "WhatId": what,
                "AccountId": account_id,
                "CreatedDate": created,
                "LastModifiedDate": max(created, modified),
                "SystemModstamp": max(created, modified),
                "IsDeleted": False,
            }
            events.append(record)
        if kind >= 0.8 or record["IsClosed"]:
            for target in (what, account_id):
                if last_activity.get(target, "") < day:
                    last_activity[target] = day
    for row in accounts:
        row["LastActivityDate"] = last_activity.get(row["Id"])
    for row in opps:
        row["LastActivityDate"] = last_activity.get(row["Id"])
    return tasks, events
