"""Who may see a dashboard page, and the protections every page gets.

A page accepts the API's bearer token (``Authorization: Bearer okr_…``) or the cookie the login form sets (the
token itself, HttpOnly, SameSite=Strict, Secure over https, sent only to ``/dashboard``). Reading needs ``viewer``;
recording a check-in or a retrospective ``sales_ops``. A form posted with the cookie must come from this site: its
Origin (or Referer) host must be the Host the request was sent to (or the configured public URL's).

Errors are page errors, not JSON: ``LoginRequired`` becomes a 303 to the login page (with a reason, never free
text, in the URL) and ``PageError`` an HTML page with its status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import Request
from sqlmodel import Session

from service.dashboard import i18n
from service.kit.auth import Caller, Role, find_token
from service.kit.settings import Settings

TOKEN_COOKIE = "okrsync_token"
LANG_COOKIE = "okrsync_lang"
COOKIE_PATH = "/dashboard"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
LOGIN_REASONS = ("login_required", "token_unknown", "logged_out")


class LoginRequired(Exception):
    """No usable token: the browser goes to the login page, and back to ``next_path`` after it."""

    def __init__(self, next_path: str, reason: str, *, clear_cookie: bool = False) -> None:
        super().__init__(reason)
        self.next_path, self.reason, self.clear_cookie = next_path, reason, clear_cookie


@dataclass
class PageError(Exception):
    """A page that cannot be shown: ``heading`` and ``message`` are i18n keys (``params`` fill the message);
    ``detail`` is a sentence from the engine shown as it is."""

    status: int
    heading: str
    message: str | None = None
    params: dict[str, object] = field(default_factory=dict)
    detail: str | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class PageCaller:
    caller: Caller
    via_cookie: bool


def language(request: Request) -> str:
    return i18n.choose(
        asked=request.query_params.get("lang"),
        remembered=request.cookies.get(LANG_COOKIE),
        accept_language=request.headers.get("accept-language"),
    )


def here(request: Request) -> str:
    """This page's path and query: where the login sends the browser back to."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def safe_next(path: str | None) -> str:
    """Only a path of this dashboard (no other host, no scheme, no login loop)."""
    if (
        not path
        or not path.startswith(COOKIE_PATH)
        or path.startswith(("//", "/dashboard/login", "/dashboard/logout"))
        or "\\" in path
        or "//" in path
        or any(part in (".", "..") for part in path.split("?")[0].split("/"))
        or any(ord(c) < 0x20 for c in path)
    ):
        return COOKIE_PATH
    return path


def authenticate(request: Request, session: Session) -> PageCaller:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        row = find_token(session, token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if row is None:
            raise PageError(401, "unauthorized_heading", "token_unknown", headers={"WWW-Authenticate": "Bearer"})
        return PageCaller(Caller(row), via_cookie=False)
    cookie = request.cookies.get(TOKEN_COOKIE)
    if not cookie:
        raise LoginRequired(here(request), "login_required")
    row = find_token(session, cookie)
    if row is None:
        raise LoginRequired(here(request), "token_unknown", clear_cookie=True)
    return PageCaller(Caller(row), via_cookie=True)


def require(found: PageCaller, role: Role) -> PageCaller:
    if not found.caller.may(role):
        role_key, have_key = f"role_{role.value}", f"role_{found.caller.role.value}"
        raise PageError(403, "forbidden_heading", "forbidden_role", {"role": role_key, "have": have_key})
    return found


def check_origin(request: Request, settings: Settings, *, required: bool = True) -> None:
    """Refuse a form sent from another site. ``required``: a request without Origin and Referer is refused too
    (browsers send Origin with every form POST; only the cookie makes such a request dangerous)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        if required:
            raise PageError(403, "forbidden_heading", "csrf_refused", {"source": "?"})
        return
    allowed = {request.headers.get("host", "").lower()}
    if settings.webhooks.public_base_url:
        allowed.add(urlsplit(settings.webhooks.public_base_url).netloc.lower())
    sent_from = urlsplit(source).netloc.lower()
    if sent_from not in allowed:
        raise PageError(403, "forbidden_heading", "csrf_refused", {"source": sent_from or source[:100]})
