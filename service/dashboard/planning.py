"""The planning pages (``/dashboard/planning``): every team's draft of its next cycle, a form to open or import one,
and per draft (``/dashboard/planning/{id}``) its objectives and key results as cards, its problems, its history and
the forms of whoever may act on it — thin routes over ``service.planning`` (the same rules as ``/api/v1/planning``).

Reps and up edit (objectives; key results with the builder, no YAML: metric type, counted record, up to three
filter conditions from the fields and values ``builder.options`` offers — a ratio's numerator and denominator, a
response time's inquiries or speed to lead's leads — the type's settings, target, baseline), preview a key result
(its value in the running cycle and the cycle before), comment and send to review; the team's lead (or sales ops)
rates each objective and key result, requests changes or approves. Every edit carries the revision its page was
loaded with: a stale one (409) shows who saved in between and keeps what was typed in the form, which then carries
the current revision (sending it again applies the change on top of the other save, knowingly).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, select

from service.compute.service import compute as compute_mapping
from service.crm.models import CrmConnection
from service.dashboard import access, i18n
from service.dashboard import planning_forms as forms
from service.dashboard.endpoints import Form, Lang, Now, PageRoute, Viewer, _one, _page
from service.goals import service as goals
from service.kit.auth import Role
from service.kit.deps import SessionDep, SettingsDep
from service.kit.errors import ServiceError
from service.kit.settings import Settings
from service.okrs import service as okrs
from service.planning import builder
from service.planning import service as planning
from service.planning.models import PlanDraft
from service.writeback.service import stage_connection

router = APIRouter(prefix="/dashboard", tags=["dashboard"], route_class=PageRoute, include_in_schema=False)
DraftId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ItemKey = Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9_-]*$")]
NOTICES = {
    "created": "plan_created", "saved": "plan_saved", "removed": "plan_removed", "commented": "plan_commented",
    "submitted": "plan_submitted", "reviewed": "plan_reviewed", "changes": "plan_changes_requested",
    "approved": "plan_approved",
}  # fmt: skip
RATING_NAMES = ("feasibility", "relevance", "effort")


def _caller(role: Role) -> Callable[[Request, Session, Settings], access.PageCaller]:
    def guard(request: Request, session: SessionDep, settings: SettingsDep) -> access.PageCaller:
        found = access.authenticate(request, session)
        if found.via_cookie:  # a bearer token is not sent by the browser on its own: no cross-site forgery
            access.check_origin(request, settings)
        return access.require(found, role)

    return guard


Rep = Annotated[access.PageCaller, Depends(_caller(Role.rep))]
Leader = Annotated[access.PageCaller, Depends(_caller(Role.lead))]


# ---------------------------------------------------------------------------------------------------- the list


def _connections(session: Session) -> list[str]:
    return [f"{c.crm}/{c.name}" for c in session.exec(select(CrmConnection).order_by(CrmConnection.id)).all()]  # type: ignore[arg-type]  # an int column orders


def _list_page(
    request: Request, session: Session, found: access.PageCaller, lang: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    drafts = planning.drafts(session)
    context.setdefault("import_form", {})
    names = {c.id: f"{c.crm}/{c.name}" for c in session.exec(select(CrmConnection)).all()}
    teams = sorted({m.team for m in okrs.mappings(session)})
    return _page(
        request, "planning.html", lang, found, status=status, drafts=drafts, connection_names=names,
        connections=_connections(session), teams=teams, can_draft=found.caller.may(Role.rep), active="nav_planning",
        **context,
    )  # fmt: skip


@router.get("/planning")
def planning_list(
    request: Request, session: SessionDep, found: Viewer, lang: Lang,
    done: Annotated[str, Query(max_length=16, pattern=r"^[a-z]*$")] = "",
) -> Response:  # fmt: skip
    notice = i18n.Translator(lang)(NOTICES[done]) if done in NOTICES else None
    return _list_page(request, session, found, lang, notice=notice)


@router.post("/planning/drafts")
def create_draft(request: Request, session: SessionDep, found: Rep, fields: Form, lang: Lang, at: Now) -> Response:
    form = {n: _one(fields, n) for n in ("connection", "team", "cycle", "start", "end", "members")}
    try:
        connection = okrs.resolve_connection(session, form["connection"] or None)
        draft = planning.create(
            session, connection=connection, team=form["team"], cycle=form["cycle"], start=forms.day(form, "start"),
            end=forms.day(form, "end"), author=found.caller.name, now=at,
            members=forms.members(form["members"]) or None, caller=found.caller,
        )  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        return _list_page(request, session, found, lang, status=exc.status, problem=str(exc), form=form)
    draft_id = draft.id
    session.commit()
    return RedirectResponse(f"/dashboard/planning/{draft_id}?done=created", status_code=303)


@router.post("/planning/import")
def import_draft(request: Request, session: SessionDep, found: Rep, fields: Form, lang: Lang, at: Now) -> Response:
    form = {n: _one(fields, n) for n in ("connection", "yaml")}
    try:
        connection = okrs.resolve_connection(session, form["connection"] or None)
        draft = planning.import_yaml(
            session, connection=connection, text=form["yaml"], author=found.caller.name, now=at, caller=found.caller
        )
    except ServiceError as exc:
        session.rollback()
        return _list_page(request, session, found, lang, status=exc.status, problem=str(exc), import_form=form)
    draft_id = draft.id
    session.commit()
    return RedirectResponse(f"/dashboard/planning/{draft_id}?done=created", status_code=303)


# --------------------------------------------------------------------------------------------------- one draft


def _draft_page(
    request: Request, session: Session, found: access.PageCaller, lang: str, draft: PlanDraft, *,
    status: int = 200, kr_form: dict[str, str] | None = None, objective_form: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:  # fmt: skip
    caller = found.caller
    connection = session.get(CrmConnection, draft.connection_id)
    assert connection is not None
    open_for_edits = draft.status != "approved"
    can_edit = open_for_edits and caller.may(Role.rep) and (caller.role is not Role.lead or caller.team == draft.team)
    can_lead = open_for_edits and caller.leads(draft.team)
    options = builder.options(session, connection) if can_edit else None
    objectives = forms.objectives(draft.content)
    if kr_form is None and objectives:
        kr_form = forms.kr_form_of(str(objectives[0].get("key") or ""), None)
    counted = (options or {}).get("counted", {})
    record_fields = counted.get(forms.condition_record(kr_form or {}), [])
    den_fields = counted.get((kr_form or {}).get("den_of", ""), [])
    all_ops = list(dict.fromkeys(op for f in record_fields for op in f["ops"]))
    den_ops = list(dict.fromkeys(op for f in den_fields for op in f["ops"]))
    for name in ("preview", "preview_problem"):
        context.setdefault(name, None)
    for name in ("comment_form", "review_form", "changes_form", "approve_form"):
        context.setdefault(name, {})
    return _page(
        request, "planning_draft.html", lang, found, status=status, draft=draft,
        connection_name=f"{connection.crm}/{connection.name}", objectives=objectives,
        problems=planning.problems(session, draft), events=planning.events(session, draft),
        goals={g.key: g.title for g in goals.listed(session)}, can_edit=can_edit, can_lead=can_lead,
        can_comment=open_for_edits and caller.may(Role.rep), options=options, kr_form=kr_form or {},
        objective_form=objective_form or {"original": "", "key": "", "title": "", "serves": ""},
        items=planning.items(draft.content), buildable=forms.buildable, conditions=range(1, forms.CONDITIONS + 1),
        figure=lambda v: "–" if v is None else forms.figure_text(v), all_ops=all_ops, den_ops=den_ops,
        record_fields=record_fields, den_fields=den_fields, sections=forms.sections(draft.content),
        statistics=forms.STATISTICS,
        reader_only=not caller.may(Role.rep), active="nav_planning", **context,
    )  # fmt: skip


@router.get("/planning/{draft_id}")
def draft_page(
    request: Request, draft_id: DraftId, session: SessionDep, found: Viewer, lang: Lang,
    done: Annotated[str, Query(max_length=16, pattern=r"^[a-z]*$")] = "",
    edit_kr: ItemKey = "", add_kr: ItemKey = "", edit_objective: ItemKey = "",
) -> Response:  # fmt: skip
    draft = _get(session, draft_id)
    notice = i18n.Translator(lang)(NOTICES[done]) if done in NOTICES else None
    kr_form = objective_form = None
    if edit_kr and (found_kr := forms.find_kr(draft.content, edit_kr)) is not None:
        kr_form = forms.kr_form_of(str(found_kr[0].get("key")), found_kr[1])
    elif add_kr:
        kr_form = forms.kr_form_of(add_kr, None)
    if edit_objective:
        objective = next((o for o in forms.objectives(draft.content) if o.get("key") == edit_objective), None)
        if objective is not None:
            title, serves = str(objective.get("title") or ""), str(objective.get("serves") or "")
            objective_form = {"original": edit_objective, "key": edit_objective, "title": title, "serves": serves}
    return _draft_page(
        request, session, found, lang, draft, notice=notice, kr_form=kr_form, objective_form=objective_form
    )


@router.get("/planning/{draft_id}/yaml")
def draft_yaml(draft_id: DraftId, session: SessionDep, found: Viewer) -> Response:
    """The draft as its mapping file (what ``GET /api/v1/planning/drafts/{id}/yaml`` gives), for the browser."""
    draft = _get(session, draft_id)
    filename = f"{draft.team}-{draft.cycle}".lower().replace(" ", "-").encode("ascii", "ignore").decode()
    return Response(
        planning.export_yaml(draft.content), media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{re.sub(r"[^a-z0-9._-]", "", filename)}.yaml"'},
    )  # fmt: skip


def _get(session: Session, draft_id: int) -> PlanDraft:
    try:
        return planning.get(session, draft_id)
    except planning.DraftNotFound as exc:
        raise access.PageError(404, "not_found_heading", detail=str(exc)) from None


def _revision(text: str) -> int:
    """The revision a form was loaded with (0: none or garbage, which no draft has: refused as stale)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0


def _done(draft_id: int, done: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/dashboard/planning/{draft_id}?done={done}{anchor}", status_code=303)


def _refused(exc: ServiceError) -> None:
    """Another team's lead, or a role that may not: the forbidden page, as for any other form."""
    if isinstance(exc, planning.NotYourTeam):
        raise access.PageError(403, "forbidden_heading", detail=str(exc)) from None


def _edit(
    request: Request, session: Session, found: access.PageCaller, lang: str, draft_id: int, *, revision: str,
    change: Callable[[dict[str, Any]], None], at: datetime, kept: dict[str, Any], done: str = "saved",
) -> Response:  # fmt: skip
    """Apply ``change`` to the stored content and save it as the next revision; on a refusal, the page with the
    reason and the form (``kept``) as typed, carrying the current revision when the refusal was a newer save."""
    draft = _get(session, draft_id)
    try:
        content = copy.deepcopy(draft.content)
        change(content)
        planning.save(session, draft, content=content, revision=_revision(revision), caller=found.caller, now=at)
    except ServiceError as exc:
        session.rollback()
        _refused(exc)
        draft = _get(session, draft_id)
        for form in kept.values():
            form["revision"] = str(draft.revision) if isinstance(exc, planning.DraftConflict) else revision
        return _draft_page(request, session, found, lang, draft, status=exc.status, problem=str(exc), **kept)
    session.commit()
    return _done(draft_id, done)


# -- objectives


@router.post("/planning/{draft_id}/objectives")
def save_objective(
    request: Request, draft_id: DraftId, session: SessionDep, found: Rep, fields: Form, lang: Lang, at: Now
) -> Response:
    form = {n: _one(fields, n) for n in ("original", "key", "title", "serves", "revision")}

    def change(content: dict[str, Any]) -> None:
        title = form["title"].strip()
        if not title:
            raise forms.FormProblem("objective title: must not be empty")
        key = forms.key_of(form["key"], title, "objective")
        objectives = content.setdefault("objectives", [])
        taken = {o.get("key") for o in forms.objectives(content)} - {form["original"]}
        if key in taken:
            raise forms.FormProblem(f"objective key: {key!r} is taken by another objective of this draft")
        current = next((o for o in forms.objectives(content) if o.get("key") == form["original"]), None)
        if form["original"] and current is None:
            raise forms.FormProblem(f"objective {form['original']!r} is no longer in the draft: someone removed it")
        if current is None:
            current = {"key_results": []}
            objectives.append(current)
        current.update(key=key, title=title)
        if form["serves"]:
            current["serves"] = form["serves"]
        else:
            current.pop("serves", None)
        # the file's order: key, title, serves, key_results
        ordered: dict[str, Any] = {k: current[k] for k in ("key", "title", "serves", "key_results") if k in current}
        ordered.update({k: v for k, v in current.items() if k not in ordered})
        current.clear()
        current.update(ordered)

    return _edit(request, session, found, lang, draft_id, revision=form["revision"], change=change, at=at,
                 kept={"objective_form": form})  # fmt: skip


@router.post("/planning/{draft_id}/objectives/remove")
def remove_objective(
    request: Request, draft_id: DraftId, session: SessionDep, found: Rep, fields: Form, lang: Lang, at: Now
) -> Response:
    key = _one(fields, "key")

    def change(content: dict[str, Any]) -> None:
        content["objectives"] = [o for o in forms.objectives(content) if o.get("key") != key]

    return _edit(request, session, found, lang, draft_id, revision=_one(fields, "revision"), change=change, at=at,
                 kept={}, done="removed")  # fmt: skip


# -- key results (the builder)


@router.post("/planning/{draft_id}/key-results")
def save_key_result(
    request: Request, draft_id: DraftId, session: SessionDep, found: Rep, fields: Form, lang: Lang, at: Now,
    settings: SettingsDep,
) -> Response:  # fmt: skip
    """The builder: ``step=fields`` shows the fields of the chosen record, ``step=preview`` the live values, anything
    else saves the key result into its objective."""
    form = forms.builder_form(fields)
    step = _one(fields, "step")
    draft = _get(session, draft_id)
    if found.caller.role is Role.lead and found.caller.team != draft.team:  # as for a save: not their team's draft
        raise access.PageError(403, "forbidden_heading", detail=f"this lead token is for team {found.caller.team}, "
                               f"not {draft.team}")  # fmt: skip
    if step == "fields":
        return _draft_page(request, session, found, lang, draft, kr_form=form)
    if step == "preview":
        return _preview(request, session, found, lang, draft, form, settings, at)

    def change(content: dict[str, Any]) -> None:
        connection = session.get(CrmConnection, draft.connection_id)
        assert connection is not None
        kr = forms.key_result_of(form, builder.options(session, connection), content)
        objective = next((o for o in forms.objectives(content) if o.get("key") == form["objective"]), None)
        if objective is None:
            raise forms.FormProblem(f"objective {form['objective']!r} is not in the draft: add the objective first")
        taken = set(planning.items(content)) - {form["original"]}
        if kr["key"] in taken:
            raise forms.FormProblem(f"key result key: {kr['key']!r} is taken in this draft")
        if form["original"] and forms.find_kr(content, form["original"]) is None:
            raise forms.FormProblem(f"key result {form['original']!r} is no longer in the draft: someone removed it")
        krs = objective.setdefault("key_results", [])
        at_index = next(
            (n for n, k in enumerate(krs) if isinstance(k, dict) and k.get("key") == form["original"]), None
        )
        for other in forms.objectives(content):  # an edit may move it to another objective
            other["key_results"] = [
                k for k in other.get("key_results") or []
                if not (form["original"] and isinstance(k, dict) and k.get("key") == form["original"])
            ]  # fmt: skip
        krs = objective["key_results"]
        krs.insert(len(krs) if at_index is None else at_index, kr)

    return _edit(request, session, found, lang, draft_id, revision=form["revision"], change=change, at=at,
                 kept={"kr_form": form})  # fmt: skip


def _preview(
    request: Request, session: Session, found: access.PageCaller, lang: str, draft: PlanDraft, form: dict[str, str],
    settings: Settings, at: datetime,
) -> Response:  # fmt: skip
    connection = session.get(CrmConnection, draft.connection_id)
    assert connection is not None
    draft_id = draft.id or 0
    try:
        kr = forms.key_result_of(form, builder.options(session, connection), draft.content)
        running, before = builder.preview(
            session, connection=connection, content=copy.deepcopy(draft.content), key_result=kr,
            today=at.date(), now=at, seconds=settings.serve.preview_seconds,
        )  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        draft = _get(session, draft_id)
        return _draft_page(request, session, found, lang, draft, status=exc.status, kr_form=form,
                           preview_problem=str(exc))  # fmt: skip
    draft = _get(session, draft_id)  # the preview rolled the session back
    return _draft_page(
        request, session, found, lang, draft, kr_form=form, preview={"running": running, "before": before}
    )


@router.post("/planning/{draft_id}/key-results/remove")
def remove_key_result(
    request: Request, draft_id: DraftId, session: SessionDep, found: Rep, fields: Form, lang: Lang, at: Now
) -> Response:
    key = _one(fields, "key")

    def change(content: dict[str, Any]) -> None:
        for objective in forms.objectives(content):
            objective["key_results"] = [
                k for k in objective.get("key_results") or [] if not (isinstance(k, dict) and k.get("key") == key)
            ]

    return _edit(request, session, found, lang, draft_id, revision=_one(fields, "revision"), change=change, at=at,
                 kept={}, done="removed")  # fmt: skip


# -- the conversation


def _act(
    request: Request, session: Session, found: access.PageCaller, lang: str, draft_id: int, done: str,
    act: Callable[[PlanDraft], object], **kept: Any,
) -> Response:  # fmt: skip
    draft = _get(session, draft_id)
    try:
        act(draft)
    except ServiceError as exc:
        session.rollback()
        _refused(exc)
        draft = _get(session, draft_id)
        return _draft_page(request, session, found, lang, draft, status=exc.status, problem=str(exc), **kept)
    session.commit()
    return _done(draft_id, done, "#history")


@router.post("/planning/{draft_id}/comments")
def add_comment(
    request: Request, draft_id: DraftId, session: SessionDep, found: Rep, fields: Form, lang: Lang, at: Now
) -> Response:
    body, item = _one(fields, "body"), _one(fields, "item") or None
    return _act(
        request, session, found, lang, draft_id, "commented",
        lambda d: planning.comment(session, d, caller=found.caller, body=body, item=item, now=at),
        comment_form={"body": body, "item": item or ""},
    )  # fmt: skip


@router.post("/planning/{draft_id}/submit")
def submit(request: Request, draft_id: DraftId, session: SessionDep, found: Rep, lang: Lang, at: Now) -> Response:
    return _act(request, session, found, lang, draft_id, "submitted",
                lambda d: planning.submit(session, d, caller=found.caller, now=at))  # fmt: skip


def _rating(text: str, name: str) -> int:
    if text not in ("1", "2", "3", "4", "5"):
        raise forms.FormProblem(f"{name}: rate it 1 (poor) to 5 (good)")
    return int(text)


@router.post("/planning/{draft_id}/reviews")
def review(
    request: Request, draft_id: DraftId, session: SessionDep, found: Leader, fields: Form, lang: Lang, at: Now
) -> Response:
    form = {n: _one(fields, n) for n in ("item", *RATING_NAMES, "body")}

    def act(draft: PlanDraft) -> object:
        ratings = {n: _rating(form[n], n) for n in RATING_NAMES}
        return planning.review(session, draft, caller=found.caller, item=form["item"], body=form["body"], now=at,
                               **ratings)  # fmt: skip

    return _act(request, session, found, lang, draft_id, "reviewed", act, review_form=form)


@router.post("/planning/{draft_id}/request-changes")
def request_changes(
    request: Request, draft_id: DraftId, session: SessionDep, found: Leader, fields: Form, lang: Lang, at: Now
) -> Response:
    body = _one(fields, "body")
    return _act(
        request, session, found, lang, draft_id, "changes",
        lambda d: planning.request_changes(session, d, caller=found.caller, body=body, now=at),
        changes_form={"body": body},
    )  # fmt: skip


@router.post("/planning/{draft_id}/approve")
def approve(
    request: Request, draft_id: DraftId, session: SessionDep, found: Leader, fields: Form, lang: Lang, at: Now,
    settings: SettingsDep,
) -> Response:  # fmt: skip
    """Apply the draft as the team's mapping, compute it and stage the results, as the API's approve does."""
    reason = _one(fields, "reason")

    def act(draft: PlanDraft) -> object:
        mapping, _version = planning.approve(session, draft, caller=found.caller, reason=reason or None, now=at)
        compute_mapping(session, mapping=mapping)
        connection = session.get(CrmConnection, mapping.connection_id)
        assert connection is not None
        stage_connection(session, connection=connection, settings=settings)
        return mapping

    return _act(request, session, found, lang, draft_id, "approved", act, approve_form={"reason": reason})
