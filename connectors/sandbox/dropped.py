"""The sandbox CRM's ``drop`` fault: send the head and half the body of an answer, then cut the connection.

The request has been served by then, so a dropped write is applied: the client sees a lost answer, as after a
network failure between the CRM's commit and its response (replay tests rely on it).
"""

from __future__ import annotations

import logging

from fastapi.responses import Response
from starlette.types import Receive, Scope, Send


class ConnectionDropped(Exception):
    """Raised after a partial body to make uvicorn close the connection (the 'drop' fault)."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class DroppedResponse(Response):
    """The head and half the body of `served`, then a cut connection (the drop fault). An answer without a body
    (a 204) goes out as a 200 head promising a byte that never comes: http.client reads no body after a 204, so
    a cut would go unnoticed."""

    def __init__(self, served: Response) -> None:
        super().__init__(served.body, status_code=served.status_code)
        self.raw_headers = list(served.raw_headers)
        if not self.body:
            self.status_code = 200 if self.status_code == 204 else self.status_code
            self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
            self.raw_headers.append((b"content-length", b"1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
        raise ConnectionDropped("sandbox fault: connection dropped mid-response")
