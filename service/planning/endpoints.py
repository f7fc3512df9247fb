"""Bottom-up planning (``/api/v1/planning``): drafts of a team's next cycle, their review and approval, the key-result
builder's options and live preview. Reading needs ``viewer``; drafting and commenting ``rep``; reviewing, requesting
changes and approving the team's ``lead`` (or ``sales_ops``). Every save names the revision it started from: a stale
one is refused with 409 naming who saved in between."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from fastapi import APIRouter, Path, Query, Response
from sqlmodel import Session

from service.compute.service import compute as compute_mapping
from service.crm.models import CrmConnection
from service.kit.auth import TokenRoute
from service.kit.db import utcnow
from service.kit.deps import Lead, Rep, SessionDep, SettingsDep, Viewer
from service.okrs import service as okrs
from service.planning import builder, schemas
from service.planning import service as planning
from service.planning.models import PlanDraft
from service.writeback.service import stage_connection

router = APIRouter(prefix="/api/v1/planning", route_class=TokenRoute, tags=["planning"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API token"},
    403: {"description": "the token's role or team may not do this"},
    404: {"description": "no such draft or connection"},
    409: {"description": "a conflict: a newer save, a draft that exists, an overlapping cycle, a wrong status"},
    422: {"description": "bad input, named"},
}
DraftId = Path(ge=1, le=2**31 - 1, description="The draft's id")


def _connection_name(session: Session, draft: PlanDraft) -> str:
    connection = session.get(CrmConnection, draft.connection_id)
    return f"{connection.crm}/{connection.name}" if connection else ""


def _summary(session: Session, draft: PlanDraft) -> dict[str, Any]:
    return {
        "id": draft.id, "connection": _connection_name(session, draft), "team": draft.team, "cycle": draft.cycle,
        "status": draft.status, "revision": draft.revision, "updated_by": draft.updated_by,
        "updated_at": draft.updated_at, "mapping_id": draft.mapping_id, "mapping_version": draft.mapping_version,
    }  # fmt: skip


def _detail(session: Session, draft: PlanDraft) -> schemas.DraftDetail:
    return schemas.DraftDetail(
        **_summary(session, draft),
        content=draft.content,
        problems=[
            schemas.ProblemOut(line=p.line, column=p.column, message=p.message)
            for p in planning.problems(session, draft)
        ],
        events=[schemas.EventOut.model_validate(e, from_attributes=True) for e in planning.events(session, draft)],
    )


@router.get("/drafts", response_model=list[schemas.DraftSummary], responses=ERRORS)
def list_drafts(session: SessionDep, caller: Viewer) -> list[schemas.DraftSummary]:
    """Every team's drafts, oldest first."""
    return [schemas.DraftSummary(**_summary(session, d)) for d in planning.drafts(session)]


@router.post("/drafts", response_model=schemas.DraftDetail, status_code=201, responses=ERRORS)
def create_draft(body: schemas.DraftCreate, session: SessionDep, caller: Rep) -> schemas.DraftDetail:
    """Open a draft for a team's cycle: members, calendar, scoring and custom fields from the team's latest mapping."""
    connection = okrs.resolve_connection(session, body.connection)
    draft = planning.create(
        session, connection=connection, team=body.team, cycle=body.cycle, start=body.start, end=body.end,
        author=caller.name, now=utcnow(), members=body.members, caller=caller,
    )  # fmt: skip
    session.commit()
    return _detail(session, draft)


@router.post("/drafts/import", response_model=schemas.DraftDetail, status_code=201, responses=ERRORS)
def import_draft(body: schemas.DraftImport, session: SessionDep, caller: Rep) -> schemas.DraftDetail:
    """A draft from a mapping file (it may be incomplete: the problems say what is missing)."""
    connection = okrs.resolve_connection(session, body.connection)
    draft = planning.import_yaml(
        session, connection=connection, text=body.yaml, author=caller.name, now=utcnow(), caller=caller
    )
    session.commit()
    return _detail(session, draft)


@router.get("/drafts/{draft_id}", response_model=schemas.DraftDetail, responses=ERRORS)
def get_draft(session: SessionDep, caller: Viewer, draft_id: int = DraftId) -> schemas.DraftDetail:
    return _detail(session, planning.get(session, draft_id))


@router.get(
    "/drafts/{draft_id}/yaml",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"application/yaml": {}}, "description": "The draft as a mapping file"}},
)
def export_draft(session: SessionDep, caller: Viewer, draft_id: int = DraftId) -> Response:
    """The draft as the mapping file a sales-ops user would write (importing it gives the same draft)."""
    draft = planning.get(session, draft_id)
    filename = f"{draft.team}-{draft.cycle}".lower().replace(" ", "-")
    return Response(
        planning.export_yaml(draft.content), media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{filename.encode("ascii", "ignore").decode()}.yaml"'},
    )  # fmt: skip


@router.put("/drafts/{draft_id}", response_model=schemas.DraftDetail, responses=ERRORS)
def save_draft(
    body: schemas.DraftSave, session: SessionDep, caller: Rep, draft_id: int = DraftId
) -> schemas.DraftDetail:
    """Replace the draft's content; refused (409) when someone saved after ``revision``."""
    draft = planning.get(session, draft_id)
    planning.save(session, draft, content=body.content, revision=body.revision, caller=caller, now=utcnow())
    session.commit()
    return _detail(session, draft)


@router.post("/drafts/{draft_id}/comments", response_model=schemas.DraftDetail, status_code=201, responses=ERRORS)
def add_comment(
    body: schemas.CommentIn, session: SessionDep, caller: Rep, draft_id: int = DraftId
) -> schemas.DraftDetail:
    draft = planning.get(session, draft_id)
    planning.comment(session, draft, caller=caller, body=body.body, item=body.item, now=utcnow())
    session.commit()
    return _detail(session, draft)


@router.post("/drafts/{draft_id}/submit", response_model=schemas.DraftDetail, responses=ERRORS)
def submit(session: SessionDep, caller: Rep, draft_id: int = DraftId) -> schemas.DraftDetail:
    """Send the draft to review (only when the mapping validation accepts it)."""
    draft = planning.get(session, draft_id)
    planning.submit(session, draft, caller=caller, now=utcnow())
    session.commit()
    return _detail(session, draft)


@router.post("/drafts/{draft_id}/reviews", response_model=schemas.DraftDetail, status_code=201, responses=ERRORS)
def review(body: schemas.ReviewIn, session: SessionDep, caller: Lead, draft_id: int = DraftId) -> schemas.DraftDetail:
    """The lead's rating of one objective or key result: feasibility, relevance, effort (1–5) and a comment."""
    draft = planning.get(session, draft_id)
    planning.review(
        session, draft, caller=caller, item=body.item, feasibility=body.feasibility, relevance=body.relevance,
        effort=body.effort, body=body.body, now=utcnow(),
    )  # fmt: skip
    session.commit()
    return _detail(session, draft)


@router.post("/drafts/{draft_id}/request-changes", response_model=schemas.DraftDetail, responses=ERRORS)
def request_changes(
    body: schemas.RequestChangesIn, session: SessionDep, caller: Lead, draft_id: int = DraftId
) -> schemas.DraftDetail:
    draft = planning.get(session, draft_id)
    planning.request_changes(session, draft, caller=caller, body=body.body, now=utcnow())
    session.commit()
    return _detail(session, draft)


@router.post("/drafts/{draft_id}/approve", response_model=schemas.DraftDetail, responses=ERRORS)
def approve(
    body: schemas.ApproveIn, session: SessionDep, caller: Lead, settings: SettingsDep, draft_id: int = DraftId
) -> schemas.DraftDetail:
    """Apply the draft as the team's mapping (the same validation and cycle rules as a file), compute it and stage
    the results for write-back."""
    draft = planning.get(session, draft_id)
    mapping, _version = planning.approve(session, draft, caller=caller, reason=body.reason, now=utcnow())
    compute_mapping(session, mapping=mapping)
    connection = session.get(CrmConnection, mapping.connection_id)
    assert connection is not None
    stage_connection(session, connection=connection, settings=settings)
    session.commit()
    return _detail(session, draft)


@router.get("/builder", responses=ERRORS)
def builder_options(
    session: SessionDep, caller: Rep, connection: str | None = Query(default=None, max_length=80)
) -> dict[str, Any]:
    """What the key-result builder offers: metric types and their settings, and per counted record the fields a
    filter can use with the values present in the synced data."""
    return builder.options(session, okrs.resolve_connection(session, connection))


@router.post("/preview", response_model=schemas.PreviewOut, responses=ERRORS)
def preview(body: schemas.PreviewIn, session: SessionDep, caller: Rep, settings: SettingsDep) -> schemas.PreviewOut:
    """One key result's value over the team's running cycle and over the cycle before (a baseline suggestion);
    nothing is stored. Stops after ``serve.preview_seconds`` with a message."""
    draft = planning.get(session, body.draft_id)
    connection = session.get(CrmConnection, draft.connection_id)
    assert connection is not None
    content = dict(draft.content)
    now = utcnow()
    if body.as_of is not None and body.as_of < now.date():
        now = datetime.combine(body.as_of, time(23, 59, 59), tzinfo=UTC)
    running, before = builder.preview(
        session, connection=connection, content=content, key_result=body.key_result, today=now.date(), now=now,
        seconds=settings.serve.preview_seconds,
    )  # fmt: skip

    def out(value: builder.PreviewValue) -> schemas.PreviewValueOut:
        return schemas.PreviewValueOut(
            window=value.window.name, start=value.window.start, end=value.window.end, value=value.value,
            records=value.records, target=value.target, progress=value.progress, status=value.status,
        )  # fmt: skip

    return schemas.PreviewOut(running=out(running), before=out(before), suggested_baseline=before.value)
