"""API tokens with roles, stored hashed; the FastAPI dependencies that check them.

Roles, from most to least rights: ``admin`` (everything), ``sales_ops`` (mappings, check-ins, assessments on any
account, reviews of any team's planning draft, and all a rep may), ``lead`` (a team lead: reviews, requests changes
to and approves their own team's planning draft — the token names the team — and all a rep may), ``kam``
(assessments on their own key accounts, and all a rep may), ``rep`` (drafts and comments on planning drafts) and
``viewer`` (read). A token is
shown once when created (``okrsync token create``); the database keeps only its SHA-256, so a leaked database
gives no usable token. Every endpoint except health and webhooks requires a token; webhooks require their CRM's
signature instead.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Coroutine
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlmodel
from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from sqlmodel import Field, Session, SQLModel
from starlette.concurrency import run_in_threadpool

from service.kit.db import UtcDateTime, utcnow

TOKEN_PREFIX = "okr_"
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}")


class Role(StrEnum):
    admin = "admin"
    sales_ops = "sales_ops"
    lead = "lead"
    kam = "kam"
    rep = "rep"
    viewer = "viewer"


# who may do what a role may: a role's rights include those of the roles listed after it
_INCLUDES: dict[Role, set[Role]] = {
    Role.admin: set(Role),
    Role.sales_ops: {Role.sales_ops, Role.lead, Role.kam, Role.rep, Role.viewer},  # any account, any team
    Role.lead: {Role.lead, Role.rep, Role.viewer},  # their own team's drafts (``team``)
    Role.kam: {Role.kam, Role.rep, Role.viewer},
    Role.rep: {Role.rep, Role.viewer},
    Role.viewer: {Role.viewer},
}


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, description="Who or what uses it")
    role: str = Field(max_length=16)
    email: str | None = Field(default=None, max_length=320, description="A KAM's CRM e-mail: their key accounts")
    team: str | None = Field(default=None, max_length=200, description="A lead's team: the drafts they review")
    token_sha256: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, *, name: str, role: Role, email: str | None = None, team: str | None = None
) -> tuple[ApiToken, str]:
    """Store a new token; returns (row, the token in clear — shown once, never stored)."""
    if role is Role.kam and not email:
        raise ValueError("a kam token needs the KAM's CRM e-mail (--email): it limits assessments to their accounts")
    if role is Role.lead and not (team or "").strip():
        raise ValueError("a lead token needs the team it leads (--team, as team.name in the mapping file)")
    if team is not None and role is not Role.lead:
        raise ValueError(f"--team is for lead tokens only (this one is {role.value})")
    if email is not None and not EMAIL.fullmatch(email.strip()):
        raise ValueError(
            f"--email must be an e-mail address as the CRM user has it (name@company.example), not {email!r}"
        )
    email = email.strip() if email else None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name, role=role.value, email=email, team=team.strip() if team else None,
        token_sha256=hash_token(token), created_at=utcnow(),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row, token


def revoke_token(session: Session, *, token_id: int) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.add(row)
    return True


def find_token(session: Session, token: str) -> ApiToken | None:
    row = session.exec(sqlmodel.select(ApiToken).where(ApiToken.token_sha256 == hash_token(token))).first()
    return row if row is not None and row.revoked_at is None else None


class Caller:
    """Who is calling: the token's id, name, role, (KAM) e-mail and (lead) team."""

    def __init__(self, token: ApiToken) -> None:
        self.token_id = token.id
        self.name = token.name
        self.role = Role(token.role)
        self.email = token.email
        self.team = token.team

    def may(self, role: Role) -> bool:
        return role in _INCLUDES[self.role]

    def leads(self, team: str) -> bool:
        """Whether they may review and approve this team's planning draft: sales ops and admins for every team, a
        lead for their own."""
        return self.may(Role.sales_ops) or (self.role is Role.lead and self.team == team)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def caller_from(request: Request, session: Session) -> Caller:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("send an API token: Authorization: Bearer okr_… (create one with `okrsync token create`)")
    row = find_token(session, token.strip())
    if row is None:
        raise _unauthorized("unknown or revoked API token")
    return Caller(row)


class TokenRoute(APIRoute):
    """An API route that checks the bearer token before FastAPI reads and validates the request: a caller without
    a valid token gets 401, whatever the body (FastAPI would otherwise answer a malformed body with 422 before any
    dependency runs, telling an anonymous caller about the API's schema). ``requires`` reuses the caller found."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            def find() -> Caller:
                with Session(request.app.state.engine) as session:
                    return caller_from(request, session)

            request.state.caller = await run_in_threadpool(find)
            return await handler(request)

        return checked


def requires(role: Role, session_dependency: Callable[..., Session]) -> Callable[..., Caller]:
    """A dependency that lets a caller through when their role includes ``role`` (else 403 naming the role)."""

    # Depends() as the default, not in Annotated: the annotation is a string here and could not see this closure
    def dependency(request: Request, session: Session = Depends(session_dependency)) -> Caller:  # noqa: B008
        found = getattr(request.state, "caller", None)
        caller = found if isinstance(found, Caller) else caller_from(request, session)
        if not caller.may(role):
            detail = f"this needs the role {role.value} (the token's role is {caller.role})"
            raise HTTPException(status_code=403, detail=detail)
        return caller

    return dependency
