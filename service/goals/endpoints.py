"""Company goals (``/api/v1``): list and read them and the company view (viewer); create, edit and delete them
(sales_ops, admin). An edit sends the version it read; a stale one is refused with 409 naming who changed the goal.
Deleting a goal that objectives serve is refused with 409 naming them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from service.goals import schemas
from service.goals import service as goals
from service.goals.models import CompanyGoal
from service.kit.auth import TokenRoute
from service.kit.db import utcnow
from service.kit.deps import SalesOps, SessionDep, Viewer

router = APIRouter(prefix="/api/v1", route_class=TokenRoute, tags=["company goals"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API token"},
    403: {"description": "the token's role may not do this (writing needs sales_ops)"},
}
GoalKey = Path(max_length=64, description="The goal's key", examples=["new-business-2026"])


def _public(goal: CompanyGoal) -> schemas.GoalPublic:
    return schemas.GoalPublic(
        key=goal.key, title=goal.title, owner=goal.owner, measure=goal.measure, period=goals.period_text(goal),
        year=goal.year, half=goal.half, version=goal.version, created_by=goal.created_by, created_at=goal.created_at,
        updated_by=goal.updated_by, updated_at=goal.updated_at,
    )  # fmt: skip


def _fields(body: schemas.GoalFieldsIn) -> goals.GoalFields:
    return goals.GoalFields(title=body.title, owner=body.owner, measure=body.measure, period=body.period)


def _objective(o: goals.ServingObjective) -> schemas.ServingObjectivePublic:
    return schemas.ServingObjectivePublic(
        mapping_id=o.mapping_id, team=o.team, cycle=o.cycle, connection=o.connection, objective=o.objective_key,
        title=o.title, progress=o.progress, status=o.status, achieved=o.achieved,
    )  # fmt: skip


@router.get("/goals", response_model=list[schemas.GoalPublic], responses=ERRORS)
def list_goals(session: SessionDep, caller: Viewer) -> list[schemas.GoalPublic]:
    """Every company goal, by period."""
    return [_public(g) for g in goals.listed(session)]


@router.post(
    "/goals",
    response_model=schemas.GoalPublic,
    status_code=201,
    responses={**ERRORS, 422: {"description": "a field is missing or malformed, or the key is taken"}},
)
def create_goal(body: schemas.GoalIn, session: SessionDep, caller: SalesOps) -> schemas.GoalPublic:
    """Add a company goal; mapping files name it by its key in an objective's ``serves:``."""
    goal = goals.create(session, key=body.key, fields=_fields(body), by=caller.name, at=utcnow())
    session.commit()
    return _public(goal)


@router.get("/goals/{goal_key}", response_model=schemas.GoalPublic, responses={**ERRORS, 404: {}})
def get_goal(session: SessionDep, caller: Viewer, goal_key: str = GoalKey) -> schemas.GoalPublic:
    """One company goal, with the version an edit must send back."""
    return _public(goals.get(session, goal_key))


@router.put(
    "/goals/{goal_key}",
    response_model=schemas.GoalPublic,
    responses={
        **ERRORS, 404: {},
        409: {"description": "the goal changed since the version sent: who changed it and when"},
        422: {"description": "a field is missing or malformed"},
    },
)  # fmt: skip
def update_goal(
    body: schemas.GoalUpdate, session: SessionDep, caller: SalesOps, goal_key: str = GoalKey
) -> schemas.GoalPublic:
    """Replace a goal's title, owner, measure and period; ``version`` is the one you read (its key never changes)."""
    goal = goals.update(session, goal_key, version=body.version, fields=_fields(body), by=caller.name, at=utcnow())
    session.commit()
    return _public(goal)


@router.delete(
    "/goals/{goal_key}",
    response_model=schemas.GoalDeleted,
    responses={
        **ERRORS, 404: {},
        409: {"description": "objectives serve the goal (named), or it changed since the version sent"},
    },
)  # fmt: skip
def delete_goal(
    session: SessionDep,
    caller: SalesOps,
    goal_key: str = GoalKey,
    version: int | None = Query(None, ge=1, le=2**31 - 1, description="The version you read; refused if older"),
) -> schemas.GoalDeleted:
    """Delete a goal no objective serves (else 409 naming the teams and objectives: remove their ``serves:``
    first)."""
    goals.delete(session, goal_key, version=version)
    session.commit()
    return schemas.GoalDeleted(key=goal_key, deleted=True)


@router.get("/company", response_model=schemas.CompanyPublic, responses=ERRORS)
def company(session: SessionDep, caller: Viewer) -> schemas.CompanyPublic:
    """Every goal with the teams' objectives that serve it (progress as last computed), the goals nobody serves and
    the objectives that serve no goal."""
    view = goals.company(session)
    return schemas.CompanyPublic(
        goals=[
            schemas.GoalWithObjectives(
                **_public(v.goal).model_dump(), teams=v.teams, objectives=[_objective(o) for o in v.objectives]
            )
            for v in view.goals
        ],
        unserved=[g.key for g in view.unserved],
        unlinked=[_objective(o) for o in view.unlinked],
        unknown=[_objective(o) for o in view.unknown],
    )
