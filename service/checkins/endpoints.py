"""Weekly check-ins and key-result trends (``/api/v1``): record (sales_ops), list and read (viewer)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from service.checkins import service as checkins
from service.checkins.models import CheckIn
from service.crm.models import CrmConnection
from service.kit.auth import TokenRoute
from service.kit.db import utcnow
from service.kit.deps import SalesOps, SessionDep, SettingsDep, Viewer
from service.kit.params import MappingId
from service.notifications.service import check_in_lines
from service.okrs.models import OkrMapping
from service.writeback.service import stage_connection

router = APIRouter(prefix="/api/v1", route_class=TokenRoute, tags=["check-ins"])
Confidence = Annotated[int, Field(ge=1, le=10)] | Literal["on_track", "at_risk", "off_track"]


class CheckInIn(BaseModel):
    attendees: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=100)
    confidence: dict[str, Confidence] = Field(default_factory=dict, description="kr key -> 1–10 or on/at risk/off")
    notes: dict[str, Annotated[str, Field(max_length=10_000)]] = Field(default_factory=dict)
    note: str | None = Field(default=None, max_length=20_000)
    values: dict[str, Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]] = Field(
        default_factory=dict,
        max_length=50,
        description="manual kr key -> the value said at the check-in (within the key result's min…max)",
    )
    corrects: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="the id of a check-in held today that this one corrects"
    )


class CheckInOut(BaseModel):
    id: int
    held_at: datetime
    author: str
    attendees: list[str]
    note: str | None
    hygiene_score: float | None
    key_results: dict[str, dict[str, object]] = Field(description="frozen: as computed when the team met")
    corrects_id: int | None = Field(default=None, description="the check-in of the same day this one corrects")


class TrendOut(BaseModel):
    kr_key: str
    value: float | None
    expected_value: float | None = Field(description="baseline + (target − baseline) × share of the window elapsed")
    change_7d: float | None
    points: int


def _mapping(session: Session, mapping_id: MappingId) -> OkrMapping:
    mapping = session.get(OkrMapping, mapping_id)
    if mapping is None or mapping.current_version == 0:
        raise HTTPException(404, f"no mapping {mapping_id}: GET /api/v1/mappings lists them")
    return mapping


def _out(row: CheckIn) -> CheckInOut:
    return CheckInOut(
        id=row.id or 0, held_at=row.held_at, author=row.author, attendees=row.attendees, note=row.note,
        hygiene_score=row.hygiene_score, key_results=row.key_results, corrects_id=row.corrects_id,
    )  # fmt: skip


@router.post(
    "/mappings/{mapping_id}/weekly-check-ins",
    response_model=CheckInOut,
    status_code=201,
    responses={
        401: {}, 403: {}, 404: {},
        409: {"description": "the cycle has ended, or the check-in to correct was not held today"}, 422: {},
    },
)  # fmt: skip
def record(
    mapping_id: MappingId, body: CheckInIn, request: Request, session: SessionDep, caller: SalesOps,
    settings: SettingsDep,
) -> CheckInOut:  # fmt: skip
    """Freeze this week's check-in: every key result as computed now, who attended, confidence and notes; the
    manual key results' values said in the room are stored first (and written back to the CRM). ``corrects``
    corrects a check-in held today; the corrected one is kept as it was."""
    mapping = _mapping(session, mapping_id)
    # a CheckInError answers with its own status (422, 409 for an ended cycle): service.kit.errors
    row = checkins.record(
        session, mapping, author=caller.name, attendees=body.attendees, confidence=dict(body.confidence),
        notes=body.notes, note=body.note, values=body.values, at=utcnow(), corrects=body.corrects,
    )  # fmt: skip
    if body.values:
        connection = session.get(CrmConnection, mapping.connection_id)
        assert connection is not None
        stage_connection(session, connection=connection, settings=settings)
    session.commit()
    notifier = request.app.state.notifier
    if notifier is not None:  # the summary goes to the team chat in the background
        notifier.post(
            f"Check-in {mapping.team} / {mapping.cycle}, {row.held_at:%Y-%m-%d}", check_in_lines(row.key_results)
        )
    return _out(row)


@router.get(
    "/mappings/{mapping_id}/weekly-check-ins", response_model=list[CheckInOut], responses={401: {}, 403: {}, 404: {}}
)
def history(mapping_id: MappingId, session: SessionDep, caller: Viewer) -> list[CheckInOut]:
    """Every check-in of the mapping, newest first, as frozen."""
    return [_out(row) for row in checkins.check_ins(session, _mapping(session, mapping_id))]


@router.get(
    "/mappings/{mapping_id}/key-results/{kr_key}/trend", response_model=TrendOut, responses={401: {}, 403: {}, 404: {}}
)
def kr_trend(mapping_id: MappingId, kr_key: str, session: SessionDep, caller: Viewer) -> TrendOut:
    """The key result's value, the value expected by now on the linear path, and its change over 7 days."""
    mapping = _mapping(session, mapping_id)
    try:
        found = checkins.trend(session, mapping, kr_key)
    except KeyError:
        raise HTTPException(404, f"no key result {kr_key!r} in {mapping.team} / {mapping.cycle}") from None
    return TrendOut(**found.__dict__)
