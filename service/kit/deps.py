"""The FastAPI dependencies the routers share, defined once: the request's database session, the app's settings and
the API's role guards.

They live here and not in ``service.app``: the app module imports every router, so a router importing the app for
its dependencies was an import cycle. Routers import these; nothing imports the app module but the entry points.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from service.kit.auth import Caller, Role, requires
from service.kit.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    """A database session per request. The request boundary owns the rollback: an error anywhere in the request
    (a ``ServiceError`` rendered as 4xx included) undoes what the request wrote. Committing stays the endpoint's
    explicit act, not the boundary's: a preview computes in the session and must leave nothing behind."""
    with Session(request.app.state.engine) as session:
        try:
            yield session
        except Exception:
            session.rollback()
            raise


def app_settings(request: Request) -> Settings:
    """The app's settings (one object, set when the app is built)."""
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(app_settings)]

# API callers by the least role a route needs (``Role``: admin > sales_ops > lead, kam > rep > viewer)
Viewer = Annotated[Caller, Depends(requires(Role.viewer, get_session))]
Kam = Annotated[Caller, Depends(requires(Role.kam, get_session))]
SalesOps = Annotated[Caller, Depends(requires(Role.sales_ops, get_session))]
Rep = Annotated[Caller, Depends(requires(Role.rep, get_session))]
Lead = Annotated[Caller, Depends(requires(Role.lead, get_session))]
