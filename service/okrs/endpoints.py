"""The API for sales ops, reps and KAMs (``/api/v1``): thin routes over ``service.okrs.service`` and the computed
tables. Roles: reading needs ``viewer``; mappings and check-ins ``sales_ops``; assessments ``kam`` (own key
accounts; ``sales_ops`` and ``admin`` any)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import sqlmodel
from fastapi import APIRouter, HTTPException, Query, Request
from sqlmodel import Session

from connectors.registry import ADAPTERS, CrmName, adapter
from connectors.webhooks import Inbound, Refused, public_uri
from mappings.source import MappingFileError
from service.compute import report as reports
from service.compute.models import (
    KamAccountScore,
    KamCriterionResult,
    KeyResultContribution,
    KeyResultHistory,
    KeyResultValue,
    ObjectiveValue,
)
from service.compute.service import compute as compute_mapping
from service.crm.models import Account, CrmConnection, Opportunity, Owner
from service.kit.auth import Caller, Role, TokenRoute
from service.kit.db import utcnow
from service.kit.deps import Kam, SalesOps, SessionDep, SettingsDep, Viewer
from service.kit.params import MappingId, Offset
from service.kit.settings import Settings
from service.okrs import repository as okr_repo
from service.okrs import schemas
from service.okrs import service as okrs
from service.okrs.models import CheckInNote, KamAssessment, OkrMapping
from service.webhooks.endpoints import raw_path
from service.webhooks.routing import routes
from service.writeback.models import OutboxRow
from service.writeback.service import stage_connection

router = APIRouter(prefix="/api/v1", route_class=TokenRoute, tags=["okrs"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API token"},
    403: {"description": "the token's role may not do this"},
}


def _mapping(session: Session, mapping_id: MappingId) -> tuple[OkrMapping, CrmConnection]:
    mapping = session.get(OkrMapping, mapping_id)
    if mapping is None or mapping.current_version == 0:
        raise HTTPException(404, f"no mapping {mapping_id}: GET /api/v1/mappings lists them")
    connection = session.get(CrmConnection, mapping.connection_id)
    assert connection is not None
    return mapping, connection


def _public(mapping: OkrMapping, connection: CrmConnection) -> schemas.MappingPublic:
    return schemas.MappingPublic(
        id=mapping.id or 0, crm=connection.crm, connection=connection.name, team=mapping.team, cycle=mapping.cycle,
        start=mapping.cycle_start, end=mapping.cycle_end, version=mapping.current_version,
    )  # fmt: skip


def _point(history: KeyResultHistory) -> schemas.TrendPoint:
    return schemas.TrendPoint(
        as_of=history.as_of, value=history.value, progress=history.progress, status=history.status
    )


@router.get("/mappings", response_model=list[schemas.MappingPublic], responses=ERRORS)
def list_mappings(session: SessionDep, caller: Viewer) -> list[schemas.MappingPublic]:
    """Every applied mapping (team and cycle)."""
    return [_public(m, _mapping(session, m.id or 0)[1]) for m in okrs.mappings(session)]


@router.get("/mappings/{mapping_id}", response_model=schemas.MappingDetail, responses={**ERRORS, 404: {}})
def get_mapping(
    mapping_id: MappingId, session: SessionDep, caller: Viewer, trend: int = Query(12, ge=0, le=200)
) -> Any:
    """Objectives and key results with value, progress, grade, status, trend and each member's contribution."""
    mapping, connection = _mapping(session, mapping_id)
    config = okrs.current_config(session, mapping)
    names = reports.owner_names(session, connection.id or 0)
    values = {
        v.kr_key: v
        for v in session.exec(sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping_id))
    }
    objectives = {
        o.objective_key: o
        for o in session.exec(sqlmodel.select(ObjectiveValue).where(ObjectiveValue.mapping_id == mapping_id))
    }
    contributions: dict[str, list[schemas.Contribution]] = {}
    for c in session.exec(sqlmodel.select(KeyResultContribution).where(KeyResultContribution.mapping_id == mapping_id)):
        contributions.setdefault(c.kr_key, []).append(
            schemas.Contribution(owner_id=c.owner_id, owner=names.get(c.owner_id), value=c.value)
        )
    trends: dict[str, list[KeyResultHistory]] = {}  # kr -> newest first, at most `trend` points: one query for all
    if trend:
        for point in session.exec(
            sqlmodel.select(KeyResultHistory)
            .where(KeyResultHistory.mapping_id == mapping_id)
            .order_by(KeyResultHistory.as_of.desc(), KeyResultHistory.id.desc())  # type: ignore[union-attr, attr-defined]
        ):
            points = trends.setdefault(point.kr_key, [])
            if len(points) < trend:
                points.append(point)
    out = []
    for objective in config.objectives:
        krs = []
        for kr in objective.key_results:
            value = values.get(kr.key)
            history = trends.get(kr.key, [])
            krs.append(
                schemas.KeyResultPublic(
                    key=kr.key, title=kr.title, metric=kr.metric.type, value=value.value if value else None,
                    target=kr.target, progress=value.progress if value else None, grade=value.grade if value else None,
                    expected=value.expected if value else 0.0, status=value.status if value else "no_data",
                    achieved=value.achieved if value else False, records=value.records if value else 0,
                    contributions=sorted(contributions.get(kr.key, []), key=lambda c: -c.value),
                    trend=[_point(h) for h in reversed(history)],
                )
            )  # fmt: skip
        stored = objectives.get(objective.key)
        out.append(
            schemas.ObjectivePublic(
                key=objective.key, title=objective.title, progress=stored.progress if stored else None,
                status=stored.status if stored else None, achieved=stored.achieved if stored else False,
                key_results=krs,
            )
        )  # fmt: skip
    computed = max((v.computed_at for v in values.values()), default=None)
    return schemas.MappingDetail(**_public(mapping, connection).model_dump(), objectives=out, computed_at=computed)


@router.get(
    "/mappings/{mapping_id}/key-results/{kr_key}/evidence",
    response_model=schemas.EvidencePage,
    responses={**ERRORS, 404: {}},
)
def evidence(
    mapping_id: MappingId,
    kr_key: str,
    session: SessionDep,
    caller: Viewer,
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
) -> schemas.EvidencePage:
    """The CRM records that counted for a key result, newest first."""
    mapping, _connection = _mapping(session, mapping_id)
    config = okrs.current_config(session, mapping)
    if kr_key not in {kr.key for _o, kr in config.key_results()}:
        raise HTTPException(404, f"no key result {kr_key!r} in {mapping.team} / {mapping.cycle}")
    metric = config.key_result(kr_key).metric
    total, page = reports.evidence(session, mapping, kr_key, limit=limit, offset=offset)
    items = [
        schemas.EvidenceItem.model_validate(e, from_attributes=True).model_copy(
            update={"business_seconds": reports.business_wait(config, metric, e.occurred_at, e.value)}
        )
        for e in page
    ]
    return schemas.EvidencePage(total=total, limit=limit, offset=offset, items=items)


RECORD_OBJECTS = {"opportunity": Opportunity, "opportunities": Opportunity, "deals": Opportunity, "deal": Opportunity,
                  "account": Account, "accounts": Account, "companies": Account, "company": Account}  # fmt: skip


def record_view(
    session: Session, *, crm: str, object_name: str, record_id: str, only: Callable[[str], bool] | None = None,
    lang: str = "en",
) -> schemas.RecordView:  # fmt: skip
    """Which key results a CRM record feeds and how, its hygiene findings and (key accounts) KAM criteria.

    ``only``: which connections (by name) may hold the record; without it, the first of the CRM's connections that
    holds the id answers (ids of different portals or orgs can coincide)."""
    model = RECORD_OBJECTS.get(object_name.lower())
    if model is None:
        raise HTTPException(404, f"okrsync has no view of {object_name} records: use opportunity or account")
    kind: Literal["opportunity", "account"] = "opportunity" if model is Opportunity else "account"
    connections = session.exec(
        sqlmodel.select(CrmConnection).where(CrmConnection.crm == crm).order_by(CrmConnection.id)  # type: ignore[arg-type]
    ).all()
    for connection in [c for c in connections if only is None or only(c.name)]:
        row = session.exec(
            sqlmodel.select(model).where(model.connection_id == connection.id, model.external_id == record_id)  # type: ignore[attr-defined, arg-type]
        ).first()
        if row is not None:
            break
    else:
        raise HTTPException(404, f"no {kind} {record_id} in the {crm} data okrsync has synced")
    mappings = {m.id: m for m in okrs.mappings(session) if m.connection_id == connection.id}
    feeds = okr_repo.record_feeds(session, connection_id=connection.id or 0, record=kind, record_id=record_id)
    key_results = []
    for feed in feeds:
        mapping = mappings.get(feed.mapping_id)
        value = session.get(KeyResultValue, (feed.mapping_id, feed.kr_key)) if mapping else None
        if mapping is None or value is None:
            continue
        title = okrs.current_config(session, mapping).key_result(feed.kr_key).title
        key_results.append(
            schemas.RecordContribution(
                mapping_id=feed.mapping_id, team=mapping.team, cycle=mapping.cycle, key_result=feed.kr_key,
                title=title, team_progress=value.progress, expected=value.expected, status=value.status,
                records=feed.records, value=feed.value,
            )
        )  # fmt: skip
    hygiene = []
    if kind == "opportunity":
        for mapping_id, mapping in mappings.items():
            lines = reports.hygiene_by_opportunity(
                session, mapping, okrs.current_config(session, mapping), opportunity_id=record_id, lang=lang
            )
            for line in lines:
                hygiene += [
                    schemas.HygieneIssue(mapping_id=mapping_id or 0, rule=rule, problem=problem)
                    for rule, problem in zip(line.rules, line.problems, strict=True)
                ]
    kam_criteria, kam_score = [], None
    if kind == "account":
        for result in session.exec(
            sqlmodel.select(KamCriterionResult).where(KamCriterionResult.account_id == record_id)
        ):
            mapping = mappings.get(result.mapping_id)
            if mapping is None:
                continue
            config = okrs.current_config(session, mapping)
            titles = {c.key: c.title for c in config.kam.criteria} if config.kam else {}
            kam_criteria.append(
                schemas.KamCriterionPublic(
                    mapping_id=result.mapping_id, criterion=result.criterion_key,
                    title=titles.get(result.criterion_key, result.criterion_key), status=result.status,
                    source=result.source, measured=result.measured, comment=result.comment,
                )
            )  # fmt: skip
        scores = session.exec(sqlmodel.select(KamAccountScore).where(KamAccountScore.account_id == record_id)).all()
        kam_score = next((s.score for s in scores if s.mapping_id in mappings), None)
    return schemas.RecordView(
        crm=crm, connection=connection.name, object=kind, id=record_id, name=getattr(row, "name", None),
        key_results=key_results, hygiene=hygiene, kam_score=kam_score, kam_criteria=kam_criteria,
    )  # fmt: skip


@router.get(
    "/records/{crm}/{object_name}/{record_id}", response_model=schemas.RecordView, responses={**ERRORS, 404: {}}
)
def get_record(
    crm: CrmName, object_name: str, record_id: str, session: SessionDep, caller: Viewer
) -> schemas.RecordView:
    """What an opportunity/deal or account/company feeds: key results, hygiene findings, KAM criteria."""
    return record_view(session, crm=crm, object_name=object_name, record_id=record_id)


def _problems(exc: MappingFileError) -> list[schemas.Problem]:
    return [schemas.Problem(line=p.line, column=p.column, message=p.message) for p in exc.problems]


@router.post("/mappings/validate", response_model=schemas.Validation, responses=ERRORS)
def validate(body: schemas.MappingSource, session: SessionDep, caller: SalesOps) -> schemas.Validation:
    """Check a mapping file: YAML, schema, references, and team members/fields against the synced data."""
    try:
        loaded = okrs.load(body.yaml, filename="mapping.yaml")
        connection = okrs.resolve_connection(session, body.connection)
        problems = okrs.check_against_crm(session, loaded, connection)
    except MappingFileError as exc:
        return schemas.Validation(valid=False, problems=_problems(exc))
    found = [schemas.Problem(line=p.line, column=p.column, message=p.message) for p in problems]
    return schemas.Validation(valid=not found, problems=found)


def _apply(session: Session, body: schemas.MappingSource, caller: Caller) -> tuple[OkrMapping, Any, CrmConnection]:
    try:
        loaded = okrs.load(body.yaml, filename="mapping.yaml")
        connection = okrs.resolve_connection(session, body.connection)
        mapping, version = okrs.apply(
            session, loaded, connection=connection, author=caller.name, reason=body.reason, now=utcnow()
        )
    except MappingFileError as exc:  # the pure engine's error: its problems, located in the file
        raise HTTPException(422, "; ".join(str(p) for p in exc.problems)) from None
    return mapping, version, connection


@router.post("/mappings/preview", response_model=schemas.MappingDetail, responses={**ERRORS, 404: {}, 409: {}, 422: {}})
def preview(body: schemas.MappingSource, session: SessionDep, caller: SalesOps) -> Any:
    """The values the file would give now; nothing is stored."""
    mapping, _version, _connection = _apply(session, body, caller)
    compute_mapping(session, mapping=mapping)
    session.flush()
    detail = get_mapping(mapping.id or 0, session, caller, trend=0)
    session.rollback()
    return detail


@router.post("/mappings/apply", response_model=schemas.Applied, responses={**ERRORS, 404: {}, 409: {}, 422: {}})
def apply(body: schemas.MappingSource, session: SessionDep, caller: SalesOps, settings: SettingsDep) -> schemas.Applied:
    """Store the file as the mapping's next version (cycle rules: key results may change mid-cycle with a reason,
    objectives may not) and compute it; the results are staged for write-back."""
    mapping, version, connection = _apply(session, body, caller)
    compute_mapping(session, mapping=mapping)
    stage_connection(session, connection=connection, settings=settings)
    session.commit()
    return schemas.Applied(
        mapping=_public(mapping, connection), version=mapping.current_version, changed=version is not None,
        changes=list(version.changes) if version is not None else [],
    )  # fmt: skip


@router.get(
    "/mappings/{mapping_id}/versions", response_model=list[schemas.VersionPublic], responses={**ERRORS, 404: {}}
)
def versions(mapping_id: MappingId, session: SessionDep, caller: Viewer) -> list[schemas.VersionPublic]:
    """Every applied version: who, when, why, what changed."""
    mapping, _connection = _mapping(session, mapping_id)
    return [schemas.VersionPublic.model_validate(v, from_attributes=True) for v in okrs.versions(session, mapping)]


def _owns(session: Session, caller: Caller, connection_id: int, account_id: str) -> bool:
    account = session.get(Account, (connection_id, account_id))
    if account is None or account.owner_id is None or caller.email is None:
        return False
    owner = session.get(Owner, (connection_id, account.owner_id))
    return owner is not None and (owner.email or "").lower() == caller.email.lower()


@router.post(
    "/mappings/{mapping_id}/kam-assessments",
    response_model=schemas.AssessmentPublic,
    status_code=201,
    responses={**ERRORS, 404: {}, 409: {}},
)
def assess(
    mapping_id: MappingId, body: schemas.AssessmentIn, session: SessionDep, caller: Kam, settings: SettingsDep
) -> schemas.AssessmentPublic:
    """A KAM's assessment of a qualitative criterion on one of their key accounts (sales ops: any account)."""
    mapping, connection = _mapping(session, mapping_id)
    if not caller.may(Role.sales_ops) and not _owns(session, caller, connection.id or 0, body.account_id):
        raise HTTPException(403, f"account {body.account_id} is not one of your key accounts ({caller.email})")
    entry = okrs.assess(
        session, mapping, account_id=body.account_id, criterion_key=body.criterion, status=body.status,
        author=caller.name, comment=body.comment, evidence_url=body.evidence_url, at=utcnow(),
    )  # fmt: skip
    compute_mapping(session, mapping=mapping)
    stage_connection(session, connection=connection, settings=settings)
    session.commit()
    return schemas.AssessmentPublic(
        id=entry.id or 0, account_id=entry.account_id, criterion=entry.criterion_key, status=entry.status,
        comment=entry.comment, evidence_url=entry.evidence_url, author=entry.author, assessed_at=entry.assessed_at,
    )  # fmt: skip


@router.get(
    "/mappings/{mapping_id}/kam-assessments",
    response_model=list[schemas.AssessmentPublic],
    responses={**ERRORS, 404: {}},
)
def assessments(
    mapping_id: MappingId, session: SessionDep, caller: Viewer, account_id: str | None = None
) -> list[schemas.AssessmentPublic]:
    """Every assessment (newest first), optionally of one account: the history behind each criterion."""
    _mapping(session, mapping_id)
    query = sqlmodel.select(KamAssessment).where(KamAssessment.mapping_id == mapping_id)
    if account_id:
        query = query.where(KamAssessment.account_id == account_id)
    rows = session.exec(query.order_by(KamAssessment.assessed_at.desc(), KamAssessment.id.desc())).all()  # type: ignore[union-attr, attr-defined]
    return [
        schemas.AssessmentPublic(
            id=r.id or 0, account_id=r.account_id, criterion=r.criterion_key, status=r.status, comment=r.comment,
            evidence_url=r.evidence_url, author=r.author, assessed_at=r.assessed_at,
        )
        for r in rows
    ]  # fmt: skip


@router.post(
    "/mappings/{mapping_id}/key-results/{kr_key}/check-ins",
    response_model=schemas.CheckInPublic,
    status_code=201,
    responses={**ERRORS, 404: {}, 409: {}, 422: {}},
)
def check_in(
    mapping_id: MappingId,
    kr_key: str,
    body: schemas.CheckInIn,
    session: SessionDep,
    caller: SalesOps,
    settings: SettingsDep,
) -> schemas.CheckInPublic:
    """At the weekly check-in: a manual key result's value, and/or the team's confidence with a note."""
    mapping, connection = _mapping(session, mapping_id)
    if body.value is None and body.confidence is None and not body.note:
        raise HTTPException(422, "send a value, a confidence (1–10) or a note")
    now: datetime = utcnow()
    try:
        okrs.current_config(session, mapping).key_result(kr_key)
    except KeyError:
        raise HTTPException(404, f"no key result {kr_key!r} in {mapping.team} / {mapping.cycle}") from None
    if body.value is not None:
        okrs.set_manual_value(
            session, mapping, kr_key=kr_key, value=body.value, author=caller.name, note=body.note, at=now
        )
        compute_mapping(session, mapping=mapping)
        stage_connection(session, connection=connection, settings=settings)
    if body.confidence is not None or body.note:
        session.add(
            CheckInNote(
                mapping_id=mapping_id,
                kr_key=kr_key,
                confidence=body.confidence,
                note=body.note,
                author=caller.name,
                entered_at=now,
            )
        )
    session.commit()
    return schemas.CheckInPublic(
        key_result=kr_key,
        value=body.value,
        confidence=body.confidence,
        note=body.note,
        author=caller.name,
        entered_at=now,
    )


def _card_endpoint(crm: str) -> Callable[..., schemas.Card]:
    def card(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        objectType: Literal["deals", "companies"],  # noqa: N803 — HubSpot's parameter names
        objectId: str,  # noqa: N803
        portalId: int | None = None,  # noqa: N803 — HubSpot adds it (with userId, userEmail, appId) to every request
        lang: Literal["en", "de"] = "en",  # the card sends its user's language: hygiene sentences in it
    ) -> schemas.Card:
        return _card(request, session, settings, crm=crm, object_type=objectType, object_id=objectId,
                     portal_id=portalId, lang=lang)  # fmt: skip

    return card


def card_routes() -> APIRouter:
    """``GET /api/v1/<crm>/card`` for every registered CRM with an app card (``CrmAdapter.app_card``): today HubSpot's,
    whose query (``objectType``, ``objectId``, ``portalId``) the route takes."""
    router = APIRouter(prefix="/api/v1", tags=["crm cards"])
    for crm, found in ADAPTERS.items():
        if found.app_card:
            router.add_api_route(
                f"/{crm}/card", _card_endpoint(crm), methods=["GET"], name=f"{crm}_card", response_model=schemas.Card,
                responses={401: {}, 404: {}, 503: {}}, description=CARD_DESCRIPTION,
            )  # fmt: skip
    return router


CARD_DESCRIPTION = (
    "The in-record view for HubSpot's app card (``hubspot.fetch``). App cards cannot send headers of their own:\n"
    """HubSpot signs the request (signature v3), and that signature is the authentication.

The record is looked up in the connection of the request's portal (``portalId``: an OKRSYNC_CONNECTIONS entry
with that hubspot_portal_id, or the default connection when its sync read that portal id), so portals whose
record ids coincide each see their own record; a portal no connection is for gets 404, never another portal's
record (``connectors.hubspot.webhooks.hubspot_card_connections``)."""
)


def _card(
    request: Request, session: Session, settings: Settings, *, crm: str, object_type: str, object_id: str,
    portal_id: int | None, lang: str = "en",
) -> schemas.Card:  # fmt: skip
    base = settings.webhooks.public_base_url or str(request.base_url)
    inbound = Inbound(
        method="GET", public_uri=public_uri(base, raw_path(request), request.url.query), headers=request.headers,
        body=b"", now=time.time(),
    )  # fmt: skip
    pages = session.exec(
        sqlmodel.select(CrmConnection.name, CrmConnection.instance_url).where(CrmConnection.crm == crm)
    ).all()
    try:
        names = adapter(crm).card_connections(inbound, routes(settings, crm), portal_id, dict(pages))
    except Refused as refused:
        raise HTTPException(refused.status, refused.message) from None
    objectType, objectId = object_type, object_id  # noqa: N806 — HubSpot's names, as the card sends them
    view = record_view(
        session, crm=crm, object_name=objectType, record_id=objectId, only=lambda name: name in names, lang=lang
    )
    key_results = []
    for feed in view.key_results:
        mapping = session.get(OkrMapping, feed.mapping_id)
        value = session.get(KeyResultValue, (feed.mapping_id, feed.key_result))
        target = okrs.current_config(session, mapping).key_result(feed.key_result).target if mapping else 0.0
        key_results.append(
            schemas.CardKeyResult(
                title=feed.title, team=feed.team, progress=feed.team_progress, expected=feed.expected,
                status=feed.status, value=value.value if value else None, target=target,
                contributed=schemas.CardContribution(
                    records=feed.records, value=feed.value, summary=f"{feed.records} counted from this record"
                ),
                dashboardUrl=f"{base.rstrip('/')}/dashboard/{feed.mapping_id}/kr/{feed.key_result}",
            )
        )  # fmt: skip
    hygiene = None
    if view.object == "opportunity":
        # the score and check time okrsync writes onto the deal (staged in the outbox), so card and CRM agree
        staged = session.exec(
            sqlmodel.select(OutboxRow)
            .join(CrmConnection, CrmConnection.id == OutboxRow.connection_id)  # type: ignore[arg-type]
            .where(
                CrmConnection.crm == crm,
                CrmConnection.name == view.connection,
                OutboxRow.target == "opportunity",
                OutboxRow.record_key == objectId,
            )
        ).first()
        payload = staged.payload if staged is not None else {}
        checked = payload.get("hygiene_checked")
        hygiene = schemas.CardHygiene(
            score=payload.get("hygiene_score"),
            issues=[i.problem for i in view.hygiene],
            checked=datetime.fromisoformat(checked) if checked else None,
        )
    kam = None
    if view.object == "account" and view.kam_criteria:
        kam = schemas.CardKam(
            score=view.kam_score,
            criteria=[
                schemas.CardKamCriterion(title=c.title, status=c.status, source=c.source, comment=c.comment)
                for c in view.kam_criteria
            ],
        )
    return schemas.Card(
        record=schemas.CardRecord(objectType=objectType, objectId=objectId, name=view.name),
        keyResults=key_results,
        hygiene=hygiene,
        kam=kam,
    )
