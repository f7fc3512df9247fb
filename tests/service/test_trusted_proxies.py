"""The dashboard's cookies behind a TLS-terminating proxy on another host (an Ingress): ``Secure`` when the proxy is
trusted (OKRSYNC_SERVE__TRUSTED_PROXIES), and a forged X-Forwarded-Proto from anyone else is ignored.

The proxy is played by a client bound to 127.0.0.2 (still loopback, but another address than the sidecar's own
127.0.0.1), against a real ``okrsync serve`` process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests import loopback
from tests.service.sidecar_process import okrsync_serve


def _login_cookie(base_url: str, token: str) -> str:
    host = base_url.removeprefix("http://")
    proxy = loopback.client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), base_url=base_url)
    with proxy:
        answer = proxy.post(
            "/dashboard/login",
            data={"token": token, "next": "/dashboard"},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", "Origin": f"https://{host}"},
        )
    assert answer.status_code == 303, answer.text
    return answer.headers["set-cookie"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("trusted", "secure"),
    [(None, False), ("10.0.0.0/8, 127.0.0.2", True), ("127.0.0.0/24", True)],
    ids=["default-untrusted", "listed", "network"],
)
def test_the_session_cookie_is_secure_behind_a_trusted_proxy(tmp_path: Path, trusted: str | None, secure: bool) -> None:
    extra = {"OKRSYNC_SERVE__TRUSTED_PROXIES": trusted} if trusted else {}
    with okrsync_serve(tmp_path, activities=200, extra_env=extra) as sidecar:
        token = sidecar.token(name="viewer", role="viewer")
        cookie = _login_cookie(sidecar.base_url, token)
    assert ("; secure" in cookie.lower()) is secure, cookie


def test_a_bad_proxy_address_is_refused_naming_the_setting() -> None:
    from pydantic import ValidationError

    from service.kit.settings import Settings, settings_problems

    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, serve={"trusted_proxies": "10.0.0.0/8, ingress.local"})  # type: ignore[call-arg]
    assert settings_problems(refused.value) == [
        "OKRSYNC_SERVE__TRUSTED_PROXIES: 'ingress.local' is not an IP address or network (e.g. 10.0.0.0/8)"
    ]
