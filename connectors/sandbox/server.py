"""Run the sandbox CRM over real HTTPS on loopback, in a background thread (tests) or in the foreground (CLI).

simple-salesforce hard-codes ``https://``, so the server speaks TLS with a throw-away CA from ``trustme``; clients
trust ``ca.pem`` (a ``requests.Session`` with ``verify=ca_path`` and ``trust_env=False``, because this machine's
REQUESTS_CA_BUNDLE would otherwise win over ``verify``).
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import requests
import trustme
import uvicorn
from requests.adapters import HTTPAdapter

from connectors.sandbox.app import create_app
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.store import SandboxOrg

_LOGIN_HOSTS = ("https://login.salesforce.com", "https://test.salesforce.com")


def write_certificates(cert_dir: Path) -> tuple[Path, Path, Path]:
    """Create a CA and a server certificate for 127.0.0.1/localhost in `cert_dir`; return (ca, cert, key) paths."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path, key_path = cert_dir / "ca.pem", cert_dir / "server.pem", cert_dir / "server-key.pem"
    authority.cert_pem.write_to_path(str(ca_path))
    issued.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    issued.private_key_pem.write_to_path(str(key_path))
    return ca_path, cert_path, key_path


def _config(
    org: SandboxOrg, *, tls: bool, cert_dir: Path | None, portal: HubSpotPortal | None = None
) -> tuple[uvicorn.Config, Path | None]:
    ca_path = cert_path = key_path = None
    if tls:
        ca_path, cert_path, key_path = write_certificates(cert_dir or Path(tempfile.mkdtemp(prefix="sandbox-tls-")))
    config = uvicorn.Config(
        create_app(org, portal),
        log_level="warning",
        access_log=False,
        lifespan="off",  # no startup/shutdown hooks; lets stop() force-exit without lifespan noise
        ssl_certfile=str(cert_path) if cert_path else None,
        ssl_keyfile=str(key_path) if key_path else None,
        timeout_graceful_shutdown=1,
    )
    return config, ca_path


class _LoginRedirect(HTTPAdapter):
    """Sends requests for login.salesforce.com / test.salesforce.com to the sandbox instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self._netloc = urlsplit(base_url).netloc

    def send(self, request, *args, **kwargs):
        parts = urlsplit(request.url)
        request.url = parts._replace(netloc=self._netloc).geturl()
        return super().send(request, *args, **kwargs)


class SandboxServer:
    """The sandbox CRM on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(
        self,
        org: SandboxOrg,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        cert_dir: Path | None = None,
        portal: HubSpotPortal | None = None,
    ) -> None:
        self.org = org
        self.portal = portal
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP: without it each answer waits for the
        # client's delayed ACK (~40 ms a call on loopback)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        config, ca = _config(org, tls=tls, cert_dir=cert_dir, portal=portal)
        self.ca_path: str | None = str(ca) if ca else None
        self.base_url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        """Start serving and wait until the server accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="sandbox-crm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox CRM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._server.force_exit = True  # do not wait for clients' idle keep-alive connections
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._sock.close()

    def session(self, *, redirect_login: bool = True) -> requests.Session:
        """A requests.Session that trusts the sandbox CA; with redirect_login, login.salesforce.com and
        test.salesforce.com are served by the sandbox, so simple-salesforce's own logins and refreshes work."""
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_path or True
        if redirect_login:
            for prefix in _LOGIN_HOSTS:
                session.mount(prefix, _LoginRedirect(self.base_url))
        return session

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(
    org: SandboxOrg,
    host: str = "127.0.0.1",
    port: int = 8443,
    cert_dir: Path | None = None,
    portal: HubSpotPortal | None = None,
) -> None:
    """Serve `org` (and `portal`) over HTTPS in the foreground until interrupted (for a CLI)."""
    config, ca_path = _config(org, tls=True, cert_dir=cert_dir, portal=portal)
    config.host, config.port = host, port
    print(f"sandbox CRM on https://{host}:{port} (CA: {ca_path})", flush=True)
    uvicorn.Server(config).run()
