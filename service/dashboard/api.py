"""``GET /api/v1/mappings/{id}/my-work``: the dashboard's "My work" for API clients — the caller's own part of a
team's cycle (their opportunities with hygiene problems, their share of each key result, what they logged since the
last working day), found by the CRM e-mail their token names (``service.dashboard.me``).

A token without an e-mail, or with one no user of the mapping's CRM has, gets 409 with what to ask sales ops for:
the request is well formed, the token lacks what "my" needs."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from service.dashboard import me
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
