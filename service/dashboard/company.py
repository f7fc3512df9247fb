"""The company page (``/dashboard/company``): every company goal with the teams' objectives that serve it and
their progress as last computed, the goals nobody serves, the objectives that serve no goal; and, for sales ops and
admins, the forms that add, edit and delete a goal — the same rules as ``/api/v1/goals`` (``service.goals``).

A stale edit (someone saved the goal since the form was loaded) is refused with 409: the page shows who changed it,
the goal as now stored, and the form still holding what was typed, now carrying the current version (sending it
again overwrites knowingly). Deleting a goal that objectives serve is refused with 409 naming them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from service.dashboard import access, i18n
from service.dashboard.endpoints import Form, Lang, Now, PageRoute, SalesOps, Viewer, _one, _page
from service.goals import service as goals
from service.kit.auth import Role
from service.kit.deps import SessionDep

router = APIRouter(prefix="/dashboard", tags=["dashboard"], route_class=PageRoute, include_in_schema=False)
FIELDS = ("key", "title", "owner", "measure", "period")
NOTICES = {"added": "goal_added", "saved": "goal_saved", "deleted": "goal_deleted"}
GoalKey = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


def _company(
    request: Request, session: Session, found: access.PageCaller, lang: str, *, status: int = 200,
    editing: str | None = None, **context: Any,
) -> HTMLResponse:  # fmt: skip
    view = goals.company(session)
    return _page(
        request, "company.html", lang, found, status=status, view=view, period=goals.period_text,
        can_edit=found.caller.may(Role.sales_ops), editing=editing, active="nav_company", **context,
    )  # fmt: skip


def _typed(fields: dict[str, list[str]]) -> dict[str, str]:
    return {name: _one(fields, name) for name in (*FIELDS, "version")}


def _version(text: str) -> int:
    """The version a form was loaded with (0: none or garbage, which no goal has, so the edit is refused as stale)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0


def _goal_fields(form: dict[str, str]) -> goals.GoalFields:
    return goals.GoalFields(title=form["title"], owner=form["owner"], measure=form["measure"], period=form["period"])


@router.get("/company")
def company(
    request: Request, session: SessionDep, found: Viewer, lang: Lang,
    done: Annotated[str, Query(max_length=16, pattern=r"^[a-z]*$")] = "",
) -> Response:  # fmt: skip
    notice = i18n.Translator(lang)(NOTICES[done]) if done in NOTICES else None
    return _company(request, session, found, lang, notice=notice)


@router.post("/company/goals")
def add_goal(request: Request, session: SessionDep, found: SalesOps, fields: Form, lang: Lang, at: Now) -> Response:
    form = _typed(fields)
    try:
        goal = goals.create(session, key=form["key"], fields=_goal_fields(form), by=found.caller.name, at=at)
    except goals.GoalError as exc:
        session.rollback()
        return _company(request, session, found, lang, status=exc.status, problem=str(exc), form=form)
    key = goal.key
    session.commit()
    return RedirectResponse(f"/dashboard/company?done=added#goal-{key}", status_code=303)


@router.post("/company/goals/{goal_key}")
def edit_goal(
    request: Request, goal_key: GoalKey, session: SessionDep, found: SalesOps, fields: Form, lang: Lang, at: Now
) -> Response:
    form = {**_typed(fields), "key": goal_key}
    version = _version(form["version"])
    try:
        goals.update(session, goal_key, version=version, fields=_goal_fields(form), by=found.caller.name, at=at)
    except goals.GoalNotFoundError as exc:  # deleted meanwhile: what was typed goes to the form that adds a goal
        session.rollback()
        return _company(request, session, found, lang, status=exc.status, problem=str(exc), form=form)
    except (goals.GoalError, goals.GoalConflictError) as exc:
        session.rollback()
        if isinstance(exc, goals.GoalConflictError):  # what was typed stays, now on top of the stored version
            form["version"] = str(goals.get(session, goal_key).version)
        return _company(
            request, session, found, lang, status=exc.status, problem=str(exc), edit_form=form, editing=goal_key
        )
    session.commit()
    return RedirectResponse(f"/dashboard/company?done=saved#goal-{goal_key}", status_code=303)


@router.post("/company/goals/{goal_key}/delete")
def delete_goal(
    request: Request, goal_key: GoalKey, session: SessionDep, found: SalesOps, fields: Form, lang: Lang
) -> Response:
    version = _version(_one(fields, "version"))
    try:
        goals.delete(session, goal_key, version=version or None)
    except (goals.GoalNotFoundError, goals.GoalConflictError) as exc:
        session.rollback()
        return _company(request, session, found, lang, status=exc.status, problem=str(exc))
    session.commit()
    return RedirectResponse("/dashboard/company?done=deleted", status_code=303)
