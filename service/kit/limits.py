"""Request body size limit for the sidecar, as plain ASGI middleware (nothing is read into memory first).

A request that declares a ``Content-Length`` above the limit is answered 413 before any of its body is read; a
chunked request is counted as it arrives and cut off with 413 once it passes the limit. The answer has the API's
error shape ``{"error": "too_large", "detail": …}``. The limit (``OKRSYNC_SERVE__MAX_BODY_BYTES``) is far above
anything okrsync needs: a mapping file is at most 1 MB of YAML, a HubSpot webhook delivery at most 100 events.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(BaseException):
    """Raised out of ``receive``. Not an ``Exception``: FastAPI turns any Exception while reading a body into
    "400 error parsing the body", and this must reach the middleware that raised it unchanged."""


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._answer(send, 400, "bad_request", "Content-Length is not a number")
                return
            if size > self.limit:
                await self._too_large(send)
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if started:  # the app answered before reading the whole body: nothing more to say
                return
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        detail = f"the request body is larger than {self.limit:,} bytes (OKRSYNC_SERVE__MAX_BODY_BYTES)"
        await self._answer(send, 413, "too_large", detail)

    @staticmethod
    async def _answer(send: Send, status: int, error: str, detail: str) -> None:
        body = json.dumps({"error": error, "detail": detail}).encode()
        headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
