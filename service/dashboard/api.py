"""``GET /api/v1/mappings/{id}/my-work``: the dashboard's "My work" for API clients — the caller's own part of a
team's cycle (their opportunities with hygiene problems, their share of each key result, what they logged since the
last working day), found by the CRM e-mail their token names (``service.dashboard.me``).

A token without an e-mail, or with one no user of the mapping's CRM has, gets 409 with what to ask sales ops for:
the request is well formed, the token lacks what "my" needs.

``GET /api/v1/mappings/{id}/standup?day=``: the dashboard's daily stand-up for API clients (viewer and up): 409
naming the mapping, the day and the last and next sprint when no sprint runs that day
(``service.dashboard.standup``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from service.dashboard import me, standup
from service.dashboard.service import load_mapping
from service.kit.auth import TokenRoute
from service.kit.db import utcnow
from service.kit.deps import SessionDep, Viewer
from service.kit.params import MappingId

router = APIRouter(prefix="/api/v1", route_class=TokenRoute, tags=["my work"])

PROBLEMS = {
    "me_no_email": (
        "this token names no CRM e-mail, so okrsync cannot tell which records are yours: ask sales ops for a token"
        " made with --email (okrsync token create --role rep --email you@company.example)"
    ),
    "me_unknown_email": (
        "no user of this mapping's CRM has the e-mail {email}: ask sales ops to check your token's --email"
    ),
}


class MyShareOut(BaseModel):
    key: str
    title: str
    mine: str = Field(description="the caller's contribution, formatted like the key result's values")
    share: float | None = Field(description="contribution ÷ the team's value (counts and sums); null otherwise")
    counted_since: int = Field(description="records of the caller that counted for it since the last working day")


class MyProblemOut(BaseModel):
    opportunity_id: str
    name: str
    url: str | None
    problems: list[str] = Field(description="one sentence per cause")


class MyWorkOut(BaseModel):
    email: str
    owner_ids: list[str] = Field(description="the CRM users with the token's e-mail")
    since: date = Field(description="the last working day (team calendar, else Monday to Friday)")
    logged: dict[str, int] = Field(description="activity kind -> what the caller logged since then")
    key_results: list[MyShareOut]
    problem_total: int = Field(description="the caller's open opportunities with at least one hygiene problem")
    problems: list[MyProblemOut] = Field(description="the first of them, most problems first")
    hygiene_mapping_id: int | None = Field(description="the mapping whose hygiene rules judged them")


@router.get("/mappings/{mapping_id}/my-work", response_model=MyWorkOut, responses={401: {}, 404: {}, 409: {}})
def my_work(mapping_id: MappingId, session: SessionDep, caller: Viewer) -> MyWorkOut:
    """The caller's own work in this team's cycle, as the dashboard's overview shows it first."""
    try:
        mapping, connection = load_mapping(session, mapping_id)
    except LookupError as exc:
        raise HTTPException(404, f"{exc}: GET /api/v1/mappings lists them") from None
    myself = me.who(session, connection.id or 0, caller)
    if myself.problem is not None:
        raise HTTPException(409, PROBLEMS[myself.problem].format(email=myself.email))
    work = me.my_work(session, mapping, myself, today=utcnow().date())
    return MyWorkOut(
        email=myself.email or "", owner_ids=sorted(myself.owner_ids), since=work.since, logged=dict(work.logged),
        key_results=[MyShareOut(key=s.kr_key, title=s.title, mine=s.shown_mine, share=s.share,
                                counted_since=s.counted_since) for s in work.shares],
        problem_total=work.problem_total,
        problems=[MyProblemOut(opportunity_id=p.record.id, name=p.record.label, url=p.record.url,
                               problems=[sentence for _rule, sentence in p.problems]) for p in work.problems],
        hygiene_mapping_id=work.hygiene_mapping_id,
    )  # fmt: skip


# -- the daily stand-up (the dashboard's /dashboard/{id}/standup) ------------------------------------------------


class CountedRecordOut(BaseModel):
    record_id: str
    name: str = Field(description="the activity's subject or the record's name")
    kind: str = Field(description="the activity's kind (call, meeting…) or the CRM object")
    url: str | None
    occurred_at: datetime
    counts_for: list[str] = Field(description='"commitment" and/or the keys of the served key results it counts for')


class StandUpProblemOut(BaseModel):
    opportunity_id: str
    name: str
    url: str | None
    problems: list[str] = Field(description="one sentence per cause, as the hygiene page words them")


class StandUpMemberOut(BaseModel):
    name: str
    email: str
    owner_ids: list[str] = Field(description="the CRM users with the member's e-mail (none: nothing can be counted)")
    logged: list[CountedRecordOut] = Field(description="what counts since the last working day, newest first")
    counted: dict[str, int] = Field(description='"commitment" or key result key -> records counted since then')
    sprint_done: float | None = Field(description="their part of the commitment over the sprint so far")
    blocked: list[StandUpProblemOut] = Field(description="hygiene findings on their open opportunities")


class BurnDownDayOut(BaseModel):
    day: date
    done: float = Field(description="the commitment's count or sum from the sprint's start to the day's end")
    remaining: float = Field(description="committed − done")
    ideal: float = Field(description="committed × sprint days after this one ÷ sprint days")


class StandUpTargetOut(BaseModel):
    key: str = Field(description='"commitment" or a served key result\'s key')
    title: str


class StandUpOut(BaseModel):
    mapping_id: int
    day: date
    since: date = Field(description="the last working day before day (team calendar, else Monday to Friday)")
    window_start: datetime = Field(description="00:00 UTC of since: records dated from here …")
    window_end: datetime = Field(description="… up to 00:00 UTC of the day after day count")
    sprint: str
    sprint_name: str
    sprint_start: date
    sprint_end: date
    commitment: str | None
    committed: float | None
    counts_toward: list[StandUpTargetOut]
    burn_down: list[BurnDownDayOut] = Field(description="empty unless the commitment is a count or a sum")
    members: list[StandUpMemberOut]
    computed_as_of: datetime | None = Field(description="the computation whose evidence this reads")
    hygiene_mapping_id: int | None = Field(description="the mapping whose hygiene rules judged the blocked items")


StandUpDay = Annotated[date | None, Query(description="The stand-up's day (YYYY-MM-DD); today (UTC) when left out")]


@router.get(
    "/mappings/{mapping_id}/standup",
    response_model=StandUpOut,
    tags=["sprints"],
    responses={
        401: {}, 403: {}, 404: {},
        409: {"description": "no sprint runs on that day: the detail names the last and the next sprint"},
        422: {"description": "day is not a date (YYYY-MM-DD) or out of range"},
    },
)  # fmt: skip
def stand_up(mapping_id: MappingId, session: SessionDep, caller: Viewer, day: StandUpDay = None) -> StandUpOut:
    """The daily stand-up of the sprint running on ``day``: per team member what they logged since the last working
    day that counts toward the sprint's commitment and the key results it serves, the commitment's burn-down, and
    the hygiene findings on their open opportunities (docs/metrics.md, "The daily stand-up")."""
    try:
        mapping, _connection = load_mapping(session, mapping_id)
    except LookupError as exc:
        raise HTTPException(404, f"{exc}: GET /api/v1/mappings lists them") from None
    # NoRunningSprintError (409) and BadDayError (422) carry their status: the app's handler answers them
    page = standup.stand_up(session, mapping, day=day or utcnow().date())
    since = datetime.combine(page.since, time(0), tzinfo=UTC)
    return StandUpOut(
        mapping_id=mapping_id, day=page.day, since=page.since, window_start=since,
        window_end=datetime.combine(page.day + timedelta(days=1), time(0), tzinfo=UTC),
        sprint=page.sprint.key, sprint_name=page.sprint.name, sprint_start=page.sprint.start,
        sprint_end=page.sprint.end, commitment=page.sprint.commitment, committed=page.sprint.committed,
        counts_toward=[StandUpTargetOut(key=t.key, title=t.title) for t in page.targets],
        burn_down=[BurnDownDayOut(day=b.day, done=b.done, remaining=b.remaining, ideal=b.ideal)
                   for b in page.burn_down],
        members=[
            StandUpMemberOut(
                name=m.name, email=m.email, owner_ids=m.owner_ids, counted=m.counted, sprint_done=m.sprint_done,
                logged=[CountedRecordOut(record_id=r.record.id, name=r.record.label, kind=r.kind, url=r.record.url,
                                         occurred_at=r.occurred_at, counts_for=list(r.counts_for)) for r in m.logged],
                blocked=[StandUpProblemOut(opportunity_id=p.record.id, name=p.record.label, url=p.record.url,
                                           problems=[sentence for _rule, sentence in p.problems])
                         for p in m.problems],
            )
            for m in page.members
        ],
        computed_as_of=page.computed_as_of, hygiene_mapping_id=page.hygiene_mapping_id,
    )  # fmt: skip
