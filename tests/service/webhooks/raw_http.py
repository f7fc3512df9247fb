"""A POST written byte by byte on a socket: httpx (h11) refuses to send a header value with spaces around it or with
bytes it finds odd, and replay tests need to send exactly what an attacker would."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx


def raw_post(base_url: str, path: str, *, headers: dict[str, bytes], body: bytes) -> tuple[int, Any]:
    """Send ``headers`` as given (name, ``: ``, the value's bytes) with ``body``; the status and the JSON answer."""
    url = httpx.URL(base_url)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {url.host}:{url.port}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    head = b"".join(line.encode() + b"\r\n" for line in lines)
    head += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
    with socket.create_connection((url.host, url.port or 80), timeout=30) as sock:
        sock.sendall(head + b"\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _head, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)
