"""Sprints (``/api/v1``): list with reviews and forecast accuracy, read one (viewer); add a sprint and record a
retrospective (sales_ops)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException
from sqlmodel import Session

from mappings.config import Sprint
from service.compute.service import compute as compute_mapping
from service.kit.auth import TokenRoute
from service.kit.db import utcnow
from service.kit.deps import SalesOps, SessionDep, Viewer
from service.kit.params import MappingId
from service.okrs.models import OkrMapping
from service.sprints import schemas
from service.sprints import service as sprints

router = APIRouter(prefix="/api/v1", route_class=TokenRoute, tags=["sprints"])
ERRORS: dict[int | str, dict[str, str]] = {401: {}, 403: {}, 404: {}}


def _mapping(session: Session, mapping_id: MappingId) -> OkrMapping:
    mapping = session.get(OkrMapping, mapping_id)
    if mapping is None or mapping.current_version == 0:
        raise HTTPException(404, f"no mapping {mapping_id}: GET /api/v1/mappings lists them")
    return mapping


def _out(review: sprints.SprintReview) -> schemas.SprintOut:
    return schemas.SprintOut.model_validate(asdict(review))


def _one(session: Session, mapping: OkrMapping, key: str) -> schemas.SprintOut:
    found = next((r for r in sprints.reviews(session, mapping) if r.key == key), None)
    if found is None:
        raise HTTPException(404, f"no sprint {key!r} in {mapping.team} / {mapping.cycle}")
    return _out(found)


@router.get("/mappings/{mapping_id}/sprints", response_model=schemas.SprintsOut, responses=ERRORS)
def list_sprints(mapping_id: MappingId, session: SessionDep, caller: Viewer) -> schemas.SprintsOut:
    """Every sprint by start with its review and retrospective, the current one, and the forecast accuracy."""
    mapping = _mapping(session, mapping_id)
    all_reviews = sprints.reviews(session, mapping)
    now = sprints.current(all_reviews, utcnow().date())
    return schemas.SprintsOut(
        sprints=[_out(r) for r in all_reviews],
        current=now.key if now else None,
        forecast=schemas.ForecastOut.model_validate(asdict(sprints.forecast(all_reviews))),
    )


@router.get("/mappings/{mapping_id}/sprints/{sprint_key}", response_model=schemas.SprintOut, responses=ERRORS)
def get_sprint(mapping_id: MappingId, sprint_key: str, session: SessionDep, caller: Viewer) -> schemas.SprintOut:
    """One sprint's review: committed vs achieved, what each key result it serves gained, the retrospective."""
    return _one(session, _mapping(session, mapping_id), sprint_key)


@router.post(
    "/mappings/{mapping_id}/sprints",
    response_model=schemas.SprintAdded,
    status_code=201,
    responses={**ERRORS, 422: {"description": "overlaps another sprint, unknown key results, outside the cycle"}},
)
def add_sprint(mapping_id: MappingId, body: Sprint, session: SessionDep, caller: SalesOps) -> schemas.SprintAdded:
    """Add a sprint (same fields as under ``sprints`` in the mapping file); the mapping gets a new version."""
    mapping = _mapping(session, mapping_id)
    try:
        version = sprints.add_sprint(session, mapping, body, author=caller.name, now=utcnow())
    except sprints.SprintError as exc:
        raise type(exc)(f"sprint {body.key}: {exc}", status=exc.status) from None  # the sprint named first
    compute_mapping(session, mapping=mapping)
    session.commit()
    return schemas.SprintAdded(version=version, sprint=_one(session, mapping, body.key))


@router.post(
    "/mappings/{mapping_id}/sprints/{sprint_key}/retrospective",
    response_model=schemas.SprintOut,
    status_code=201,
    responses={**ERRORS, 422: {"description": "unknown sprint, not started, no improvement item"}},
)
def record_retrospective(
    mapping_id: MappingId, sprint_key: str, body: schemas.RetrospectiveIn, session: SessionDep, caller: SalesOps
) -> schemas.SprintOut:
    """Record the sprint's retrospective; its improvement item is shown with the next sprint."""
    mapping = _mapping(session, mapping_id)
    # a SprintError answers with its own status (404 for an unknown sprint, else 422): service.kit.errors
    sprints.record_retrospective(
        session, mapping, sprint_key, improvement=body.improvement, went_well=body.went_well,
        carried_done=body.carried_done, note=body.note, author=caller.name, at=utcnow(),
    )  # fmt: skip
    session.commit()
    return _one(session, mapping, sprint_key)
