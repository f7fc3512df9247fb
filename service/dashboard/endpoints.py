"""The team dashboard (``/dashboard``): server-rendered pages over the computed results, thin routes over
``service.dashboard.service``.

Routes: ``/dashboard`` (teams and cycles), ``/dashboard/login`` and ``/logout``, and per mapping ``/{id}``
(overview), ``/{id}/kr/{key}`` (burn-up, trend, evidence), ``/{id}/hygiene``, ``/{id}/kam``, ``/{id}/sprints``
(review, retrospective form, forecast accuracy), ``/{id}/standup`` (the daily stand-up of the running sprint) and
``/{id}/check-in`` (the weekly meeting, its form and past
check-ins). Pages are HTML for people, so they are left out of the OpenAPI document; errors are pages too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlmodel import Session

from service.checkins import service as checkins
from service.compute.repository import last_computed_as_of
from service.compute.service import compute as compute_mapping
from service.crm.models import CrmConnection
from service.dashboard import access, charts, health, i18n, links, me, standup
from service.dashboard import service as views
from service.dashboard.render import render
from service.kit.auth import TOKEN_PREFIX, Role, find_token
from service.kit.db import utcnow
from service.kit.deps import SessionDep, SettingsDep
from service.kit.params import MappingId, Offset, RowId
from service.notifications.service import check_in_lines
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sprints import service as sprints
from service.writeback.service import stage_connection

STATIC_DIR = Path(__file__).parent / "static"
MAX_FORM_BYTES = 1_000_000
ASSESSMENT_CHOICES = ("met", "partly", "not_met")
LIMITS = {"comment": 10_000, "note": 20_000, "kr_note": 10_000, "improvement": 2_000, "went_well": 10_000}


class PageRoute(APIRoute):
    """Renders the dashboard's own errors as pages (or a redirect to the login) and adds the security headers and
    the language cookie to every answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            lang = access.language(request)
            try:
                response = await handler(request)
            except access.LoginRequired as exc:
                query = urlencode({"next": access.safe_next(exc.next_path), "reason": exc.reason})
                response = RedirectResponse(f"/dashboard/login?{query}", status_code=303)
                if exc.clear_cookie:
                    response.delete_cookie(access.TOKEN_COOKIE, path=access.COOKIE_PATH)
            except access.PageError as exc:
                response = error_page(request, lang, exc)
            except views.NotFoundError as exc:
                response = error_page(request, lang, access.PageError(404, "not_found_heading", detail=str(exc)))
            except RequestValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
                response = error_page(request, lang, access.PageError(422, "invalid_heading", detail=problems))
            protect(request, response)
            return response

        return page


def error_page(request: Request, lang: str, exc: access.PageError) -> HTMLResponse:
    t = i18n.Translator(lang)
    params = {k: t(v) if isinstance(v, str) and v in t else v for k, v in exc.params.items()}
    message = exc.detail if exc.detail is not None else t(exc.message, **params) if exc.message else ""
    if exc.status == 404 and exc.detail is not None:
        message = t("not_found", detail=exc.detail)
    html = render(
        "error.html", lang=lang, heading=t(exc.heading), message=message, show_login=exc.status in (401, 403),
        lang_url=_lang_url(request),
    )  # fmt: skip
    return HTMLResponse(html, status_code=exc.status, headers=exc.headers)


def protect(request: Request, response: Response) -> None:
    response.headers["Content-Security-Policy"] = access.CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    asked = request.query_params.get("lang")
    if asked in i18n.LANGUAGES and request.cookies.get(access.LANG_COOKIE) != asked:
        response.set_cookie(
            access.LANG_COOKIE, asked, max_age=365 * 86400, path=access.COOKIE_PATH, httponly=True, samesite="lax",
            secure=request.url.scheme == "https",
        )  # fmt: skip


router = APIRouter(prefix="/dashboard", tags=["dashboard"], route_class=PageRoute, include_in_schema=False)
Lang = Annotated[str, Depends(access.language)]


def now() -> datetime:
    """The time pages and forms work with (a dependency: tests of a past cycle set it)."""
    return utcnow()


Now = Annotated[datetime, Depends(now)]


def viewer(request: Request, session: SessionDep) -> access.PageCaller:
    return access.require(access.authenticate(request, session), Role.viewer)


def sales_ops(request: Request, session: SessionDep, settings: SettingsDep) -> access.PageCaller:
    found = access.authenticate(request, session)
    if found.via_cookie:  # a bearer token is not sent by the browser on its own: no cross-site forgery
        access.check_origin(request, settings)
    return access.require(found, Role.sales_ops)


def kam_caller(request: Request, session: SessionDep, settings: SettingsDep) -> access.PageCaller:
    found = access.authenticate(request, session)
    if found.via_cookie:
        access.check_origin(request, settings)
    return access.require(found, Role.kam)


Viewer = Annotated[access.PageCaller, Depends(viewer)]
SalesOps = Annotated[access.PageCaller, Depends(sales_ops)]
KamCaller = Annotated[access.PageCaller, Depends(kam_caller)]


async def form_fields(request: Request) -> dict[str, list[str]]:
    """The posted form (application/x-www-form-urlencoded, what the pages' forms send)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise access.PageError(413, "invalid_heading", detail=f"the form is larger than {MAX_FORM_BYTES:,} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise access.PageError(415, "invalid_heading", detail="send the form as application/x-www-form-urlencoded")
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


Form = Annotated[dict[str, list[str]], Depends(form_fields)]


def _one(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[-1]


def _lang_url(request: Request) -> Callable[[str], str]:
    def url(code: str) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("lang", "recorded")]
        return "?" + urlencode([*params, ("lang", code)])

    return url


def _page(
    request: Request, template: str, lang: str, found: access.PageCaller | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    html = render(template, lang=lang, caller=found.caller if found else None, lang_url=_lang_url(request), **context)
    return HTMLResponse(html, status_code=status)


def _mapping(session: Session, mapping_id: MappingId) -> OkrMapping:
    mapping, _connection = views.load_mapping(session, mapping_id)
    return mapping


def _crm_note(session: Session, lang: str, mapping_id: MappingId) -> str | None:
    """Why the CRM records have no links, when they have none."""
    _mapping, connection = views.load_mapping(session, mapping_id)
    t, note = i18n.Translator(lang), f"crm_note_{connection.crm}"  # a CRM whose record pages the sync must find
    if note in t and links.record_pages(connection.crm, connection.instance_url) is None:
        return t(note)
    return None


OwnerFilter = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:@-]*$", description='"me" or a CRM user id')]


def _me_problem(lang: str, myself: me.Me) -> str | None:
    """Why "mine" cannot be shown to this token (no e-mail, or one no CRM user has), in the page's language."""
    return i18n.Translator(lang)(myself.problem, email=myself.email or "–") if myself.problem else None


# -- login ------------------------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, lang: Lang, next: str = "", reason: str = "") -> HTMLResponse:
    t = i18n.Translator(lang)
    notice = t(reason) if reason in ("logged_out", "login_required") else None
    problem = t(reason) if reason == "token_unknown" else None
    return _page(request, "login.html", lang, None, next_path=access.safe_next(next), notice=notice, problem=problem)


@router.post("/login")
def login(request: Request, session: SessionDep, settings: SettingsDep, fields: Form, lang: Lang) -> Response:
    access.check_origin(request, settings, required=False)
    token, next_path = _one(fields, "token").strip(), access.safe_next(_one(fields, "next"))
    if not token.startswith(TOKEN_PREFIX) or find_token(session, token) is None:
        t = i18n.Translator(lang)
        return _page(request, "login.html", lang, None, status=401, next_path=next_path, problem=t("token_unknown"))
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        access.TOKEN_COOKIE, token, path=access.COOKIE_PATH, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.post("/logout")
def logout(request: Request, settings: SettingsDep) -> Response:
    if request.cookies.get(access.TOKEN_COOKIE):
        access.check_origin(request, settings)
    response = RedirectResponse("/dashboard/login?reason=logged_out", status_code=303)
    response.delete_cookie(access.TOKEN_COOKIE, path=access.COOKIE_PATH)
    return response


# -- pages ------------------------------------------------------------------------------------------------------


@router.get("")
def mappings(request: Request, session: SessionDep, found: Viewer, lang: Lang, at: Now) -> HTMLResponse:
    return _page(request, "mappings.html", lang, found, rows=views.mapping_rows(session, today=at.date()))


@router.get("/{mapping_id:int}")
def overview(
    request: Request, mapping_id: MappingId, session: SessionDep, found: Viewer, lang: Lang, at: Now
) -> Response:
    page = views.overview(session, _mapping(session, mapping_id), today=at.date(), caller=found.caller, lang=lang)
    return _page(
        request, "overview.html", lang, found, page=page, mapping=page.mapping, active="nav_overview",
        may_check_in=found.caller.may(Role.sales_ops),
    )  # fmt: skip


@router.get("/{mapping_id:int}/kr/{kr_key}")
def key_result(
    request: Request, mapping_id: MappingId, kr_key: str, session: SessionDep, found: Viewer, lang: Lang, at: Now,
    offset: Offset = 0, owner: OwnerFilter = "",
) -> Response:  # fmt: skip
    mapping = _mapping(session, mapping_id)
    myself = me.who(session, mapping.connection_id, found.caller)
    owner_ids = set(myself.owner_ids) if owner == "me" else {owner} if owner else None
    page = views.key_result_page(
        session, mapping, kr_key, today=at.date(), offset=offset, owner_ids=owner_ids
    )  # fmt: skip
    t = i18n.Translator(lang)
    chart = views.chart_svg(page, legend={
        "actual": t("legend_actual"), "expected": t("legend_expected"), "target": t("legend_target"),
        "now": t("legend_now"),
    }, title=t("chart_title", title=page.kr.title), lang=lang, now=at)  # fmt: skip
    return _page(
        request, "key_result.html", lang, found, page=page, mapping=page.mapping, chart=chart,
        crm_note=_crm_note(session, lang, mapping_id), my_names=myself.names, my_owner_ids=myself.owner_ids,
        owner=owner, problem=_me_problem(lang, myself) if owner == "me" else None,
    )  # fmt: skip


@router.get("/{mapping_id:int}/hygiene")
def hygiene(
    request: Request, mapping_id: MappingId, session: SessionDep, found: Viewer, lang: Lang, at: Now,
    offset: Offset = 0, owner: OwnerFilter = "",
) -> Response:  # fmt: skip
    mapping = _mapping(session, mapping_id)
    page = health.hygiene_page(
        session, mapping, today=at.date(), offset=offset, owner=owner, caller=found.caller, lang=lang
    )
    myself = me.who(session, mapping.connection_id, found.caller)
    problem = _me_problem(lang, myself) if owner == "me" else None
    config = okrs.current_config(session, mapping)
    source = None if config.hygiene.rules else me.hygiene_source(session, mapping, config, at.date())
    return _page(
        request, "hygiene.html", lang, found, page=page, mapping=page.mapping, active="nav_hygiene",
        crm_note=_crm_note(session, lang, mapping_id), my_owner_ids=myself.owner_ids, problem=problem,
        elsewhere=views.mapping_row(source, views.load_mapping(session, source.id or 0)[1], at.date())
        if source is not None else None,
    )  # fmt: skip


def _kam(
    request: Request, session: Session, mapping: OkrMapping, found: access.PageCaller, lang: str, at: datetime,
    *, mine: int = 0, status: int = 200, **context: Any,
) -> HTMLResponse:  # fmt: skip
    page = health.kam_page(session, mapping, today=at.date(), caller=found.caller, only_mine=bool(mine))
    return _page(
        request, "kam.html", lang, found, status=status, page=page, mapping=page.mapping, active="nav_kam",
        crm_note=_crm_note(session, lang, mapping.id or 0), **context,
    )  # fmt: skip


@router.get("/{mapping_id:int}/kam")
def kam(
    request: Request, mapping_id: MappingId, session: SessionDep, found: Viewer, lang: Lang, at: Now,
    mine: Annotated[int, Query(ge=0, le=1)] = 0, assessed: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:  # fmt: skip
    notice = i18n.Translator(lang)("assessment_recorded") if assessed else None
    return _kam(request, session, _mapping(session, mapping_id), found, lang, at, mine=mine, notice=notice)


@router.post("/{mapping_id:int}/kam")
def record_assessment(
    request: Request, mapping_id: MappingId, session: SessionDep, settings: SettingsDep, found: KamCaller,
    fields: Form, lang: Lang, at: Now,
) -> Response:  # fmt: skip
    """A KAM's assessment of an assessed criterion on one of their key accounts (sales ops: any key account),
    the same rules as ``POST /api/v1/mappings/{id}/kam-assessments``; the score is recomputed at once."""
    mapping, connection = views.load_mapping(session, mapping_id)
    t = i18n.Translator(lang)
    form = {name: _one(fields, name).strip() for name in ("account", "criterion", "status", "comment", "evidence_url")}
    mine = 1 if _one(fields, "mine") == "1" else 0
    problem, status = None, 422
    if form["status"] not in ASSESSMENT_CHOICES:
        problem = t("assessment_status_missing")
    elif len(form["comment"]) > LIMITS["comment"]:
        problem = t("too_long", field=t("comment"), limit=LIMITS["comment"])
    elif form["evidence_url"] and (
        not form["evidence_url"].lower().startswith(("https://", "http://")) or len(form["evidence_url"]) > 1000
    ):
        problem = t("evidence_url_invalid")
    elif not found.caller.may(Role.sales_ops) and (
        views.account_owner(session, connection.id or 0, form["account"])
        not in me.who(session, connection.id or 0, found.caller).owner_ids
    ):
        problem, status = t("not_your_account", account=form["account"], email=found.caller.email or "–"), 403
    if problem is None:
        try:
            okrs.assess(
                session, mapping, account_id=form["account"], criterion_key=form["criterion"], status=form["status"],
                author=found.caller.name, comment=form["comment"] or None, evidence_url=form["evidence_url"] or None,
                at=at,
            )  # fmt: skip
        except okrs.NotFoundError as exc:
            problem, status = str(exc), 404
        except (okrs.CycleRuleError, ValueError) as exc:
            problem = str(exc)
    if problem is not None:
        session.rollback()
        return _kam(request, session, mapping, found, lang, at, mine=mine, status=status, problem=problem, form=form)
    # as of now, or of the last computation when the page's clock is behind it (a test of a past cycle)
    compute_mapping(session, mapping=mapping, as_of=max(at, last_computed_as_of(session, mapping_id=mapping_id) or at))
    stage_connection(session, connection=connection, settings=settings)
    session.commit()
    anchor = health.account_anchor(form["account"])
    return RedirectResponse(f"/dashboard/{mapping_id}/kam?assessed=1&mine={mine}#{anchor}", status_code=303)


# -- sprints and their retrospective ------------------------------------------------------------------------------


def _sprints(
    request: Request, session: Session, mapping: OkrMapping, found: access.PageCaller, lang: str, at: datetime,
    *, status: int = 200, sprint: str = "", **context: Any,
) -> HTMLResponse:  # fmt: skip
    page = views.sprint_page(session, mapping, today=at.date(), sprint=sprint)
    return _page(
        request, "sprints.html", lang, found, status=status, page=page, mapping=page.mapping, active="nav_sprints",
        can_record=found.caller.may(Role.sales_ops), **context,
    )  # fmt: skip


@router.get("/{mapping_id:int}/sprints")
def sprint_review(
    request: Request,
    mapping_id: MappingId,
    session: SessionDep,
    found: Viewer,
    lang: Lang,
    at: Now,
    recorded: Annotated[int, Query(ge=0, le=1)] = 0,
    sprint: Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9_-]*$", description="a sprint's key")] = "",
) -> Response:
    notice = i18n.Translator(lang)("retrospective_recorded") if recorded else None
    return _sprints(request, session, _mapping(session, mapping_id), found, lang, at, notice=notice, sprint=sprint)


@router.post("/{mapping_id:int}/sprints")
def record_retrospective(
    request: Request, mapping_id: MappingId, session: SessionDep, found: SalesOps, fields: Form, lang: Lang, at: Now
) -> Response:
    mapping = _mapping(session, mapping_id)
    form = {name: _one(fields, name) for name in ("sprint", "improvement", "went_well", "carried_done", "note")}
    t = i18n.Translator(lang)
    labels = {"improvement": t("improvement_item"), "went_well": t("went_well"), "note": t("note")}
    problem = next(
        (t("too_long", field=labels[name], limit=LIMITS[name]) for name in labels if len(form[name]) > LIMITS[name]),
        None,
    )
    if problem is None:
        try:
            sprints.record_retrospective(
                session, mapping, form["sprint"], improvement=form["improvement"], went_well=form["went_well"],
                carried_done={"yes": True, "no": False}.get(form["carried_done"]), note=form["note"],
                author=found.caller.name, at=at,
            )  # fmt: skip
        except sprints.SprintError as exc:
            problem = str(exc)
    if problem is not None:
        session.rollback()
        return _sprints(request, session, mapping, found, lang, at, status=422, problem=problem, form=form)
    session.commit()
    return RedirectResponse(f"/dashboard/{mapping_id}/sprints?recorded=1#current", status_code=303)


# -- the daily stand-up -------------------------------------------------------------------------------------------

StandUpDay = Annotated[date | None, Query(description="The stand-up's day (YYYY-MM-DD); today when left out")]


@router.get("/{mapping_id:int}/standup")
def daily_stand_up(
    request: Request, mapping_id: MappingId, session: SessionDep, found: Viewer, lang: Lang, at: Now,
    day: StandUpDay = None, projector: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:  # fmt: skip
    """Per member what counts since the last working day, the commitment's burn-down, blocked and overdue items."""
    mapping = _mapping(session, mapping_id)
    asked = day or at.date()
    try:
        page = standup.stand_up(session, mapping, day=asked, lang=lang)
    except standup.NoRunningSprintError as exc:
        _m, connection = views.load_mapping(session, mapping_id)
        return _page(
            request, "standup.html", lang, found, page=None, no_sprint=exc, day=asked, projector=projector,
            mapping=views.mapping_row(mapping, connection, asked), active="nav_sprints",
        )  # fmt: skip
    except standup.BadDayError as exc:
        raise access.PageError(422, "invalid_heading", detail=str(exc)) from None
    t = i18n.Translator(lang)
    chart = None
    if page.burn_down and page.sprint.committed is not None:
        chart = charts.burn_down_svg(
            [b.remaining for b in page.burn_down], committed=page.sprint.committed, days=page.sprint.days,
            first_day=str(page.sprint.start), last_day=str(page.sprint.end),
            title=t("burn_down_title", commitment=page.sprint.commitment or ""),
            legend={"actual": t("legend_remaining"), "ideal": t("legend_ideal")},
            shown=lambda value: i18n.localize_number(page.shown(value), lang),
        )  # fmt: skip
    return _page(
        request, "standup.html", lang, found, page=page, no_sprint=None, day=asked, projector=projector, chart=chart,
        mapping=page.mapping, active="nav_sprints",
    )  # fmt: skip


# -- the weekly check-in ----------------------------------------------------------------------------------------


def _check_in(
    request: Request, session: Session, mapping: OkrMapping, found: access.PageCaller, lang: str, at: datetime,
    *, status: int = 200, past: int = 0, correct: int | None = None, **context: Any,
) -> HTMLResponse:  # fmt: skip
    page = views.check_in_page(session, mapping, today=at.date(), past_offset=past, correct=correct)
    may = found.caller.may(Role.sales_ops)
    return _page(
        request, "check_in.html", lang, found, status=status, page=page, mapping=page.mapping, active="nav_check_in",
        can_record=may and page.is_open, show_role_hint=page.is_open and not may, **context,
    )  # fmt: skip


@router.get("/{mapping_id:int}/check-in")
def check_in(
    request: Request, mapping_id: MappingId, session: SessionDep, found: Viewer, lang: Lang, at: Now,
    recorded: RowId = 0, past: Offset = 0, correct: RowId = 0,
) -> Response:  # fmt: skip
    t = i18n.Translator(lang)
    notice = t("check_in_recorded") if recorded else None
    mapping = _mapping(session, mapping_id)
    problem = None
    if correct:
        page = views.check_in_page(session, mapping, today=at.date(), correct=correct)
        assert page.correcting is not None
        if page.correcting.held_at.date() != at.date():
            problem = t("correct_only_same_day", held=page.correcting.held_at.date(), today=at.date())
    return _check_in(request, session, mapping, found, lang, at, notice=notice, highlight=recorded or None,
                     past=past, correct=correct or None, problem=problem)  # fmt: skip


def _number(text: str) -> float | None:
    """A number as people type it: 35, -12, 4.5 or 4,5; None for anything else (nan and inf included)."""
    cleaned = text.replace("\u2212", "-").replace(" ", "").replace("\u00a0", "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    if len(cleaned) > 40 or not all(c in "0123456789.-+eE" for c in cleaned):
        return None
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@router.post("/{mapping_id:int}/check-in")
def record_check_in(
    request: Request, mapping_id: MappingId, session: SessionDep, settings: SettingsDep, found: SalesOps,
    fields: Form, lang: Lang, at: Now,
) -> Response:  # fmt: skip
    mapping = _mapping(session, mapping_id)
    t = i18n.Translator(lang)
    attendees = [name for name in fields.get("attendee", []) if name.strip()]
    confidence: dict[str, int | str] = {}
    notes: dict[str, str] = {}
    typed: dict[str, str] = {}
    for name, values in fields.items():
        kind, _, kr_key = name.partition(".")
        value = values[-1].strip()
        if kind == "confidence" and kr_key and value:
            # ASCII digits only: "²".isdigit() is true, and int() of 5,000 digits raises
            confidence[kr_key] = int(value) if value.isascii() and value.isdigit() and len(value) <= 3 else value
        elif kind == "note" and kr_key and value:
            notes[kr_key] = value
        elif kind == "value" and kr_key and value:
            typed[kr_key] = value
    note = _one(fields, "note").strip() or None
    corrects_text = _one(fields, "corrects").strip()
    corrects = (
        int(corrects_text) if corrects_text.isascii() and corrects_text.isdigit() and len(corrects_text) < 12 else None
    )
    form = {"attendees": attendees, "confidence": {k: str(v) for k, v in confidence.items()}, "notes": notes,
            "note": note or "", "values": typed}  # fmt: skip
    config = okrs.current_config(session, mapping)
    titles = {kr.key: kr.title for _o, kr in config.key_results()}
    team = views.members(session, mapping, config)
    problem = next((t("attendee_unknown", name=name) for name in attendees if name not in team), None)
    if problem is None and corrects_text and corrects is None:
        problem = t("corrects_invalid")
    numbers: dict[str, float] = {}
    for kr_key, text in typed.items():
        number = _number(text)
        if problem is None and number is None:
            problem = t("value_not_a_number", kr=titles.get(kr_key, kr_key), text=text[:40])
        elif number is not None:
            numbers[kr_key] = number
    if problem is None and len(note or "") > LIMITS["note"]:
        problem = t("too_long", field=t("general_note"), limit=LIMITS["note"])
    if problem is None and any(len(text) > LIMITS["kr_note"] for text in notes.values()):
        problem = t("too_long", field=t("note"), limit=LIMITS["kr_note"])
    status = 422
    if problem is None:
        try:
            row = checkins.record(
                session, mapping, author=found.caller.name, attendees=attendees, confidence=confidence, notes=notes,
                note=note, values=numbers, at=at, corrects=corrects,
            )  # fmt: skip
        except checkins.CheckInError as exc:
            problem, status = str(exc), exc.status
    if problem is not None:
        session.rollback()
        return _check_in(request, session, mapping, found, lang, at, status=status, problem=problem, form=form,
                         correct=corrects if corrects and status != 404 else None)  # fmt: skip
    if numbers:
        connection = session.get(CrmConnection, mapping.connection_id)
        assert connection is not None
        stage_connection(session, connection=connection, settings=settings)
    session.commit()
    notifier = request.app.state.notifier
    if notifier is not None:  # the summary goes to the team chat in the background, as from the API
        notifier.post(
            f"Check-in {mapping.team} / {mapping.cycle}, {row.held_at:%Y-%m-%d}", check_in_lines(row.key_results)
        )
    return RedirectResponse(f"/dashboard/{mapping_id}/check-in?recorded={row.id}#check-in-{row.id}", status_code=303)
