"""Run an ASGI app with uvicorn in a background thread on loopback (tests, benchmarks, the demo)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """``with ThreadedServer(app) as server: httpx.get(server.base_url + "/healthz")`` — uvicorn in a thread.

    ``sock``: serve on this bound socket (its port was reserved earlier, so nobody can take it meanwhile)."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int | None = None, sock: socket.socket | None = None
    ) -> None:
        import uvicorn

        if sock is not None:
            host, port = sock.getsockname()[:2]
        self.host, self.port = host, port or free_port(host)
        self._sock = sock
        self.base_url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning"))
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10) -> ThreadedServer:
        sockets = {"sockets": [self._sock]} if self._sock is not None else {}
        self._thread = threading.Thread(target=self._server.run, kwargs=sockets, name="okrsync-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.base_url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
