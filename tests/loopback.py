"""HTTP from the tests to the servers they start on 127.0.0.1 (the sidecar, the sandbox CRM, the dashboard).

httpx waits 5 s for an answer unless told otherwise, and that made requests into timed assertions: CI runs
``pytest -n 4`` on 2 cores, and there a 0.1 s request waited more than 5 s twice (the dashboard's huge-number
page in 8cab04a's run, a sprint's 404 in 689afcb's). These wrappers wait ``TIMEOUT`` unless a call gives its own,
so a request fails on a hang, not on a busy machine. ruff's banned-api rule (pyproject.toml) points tests here."""

from __future__ import annotations

from typing import Any

import httpx

TIMEOUT = httpx.Timeout(120.0, connect=30.0)
Client = httpx.Client  # noqa: TID251 — the type, for annotations; make one with client()


def _waiting(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("timeout", TIMEOUT)
    return kwargs


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, **_waiting(kwargs))  # noqa: TID251 — the one place tests call it


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> httpx.Response:
    return request("PUT", url, **kwargs)


def patch(url: str, **kwargs: Any) -> httpx.Response:
    return request("PATCH", url, **kwargs)


def delete(url: str, **kwargs: Any) -> httpx.Response:
    return request("DELETE", url, **kwargs)


def client(**kwargs: Any) -> Client:
    """An ``httpx.Client`` (keyword arguments as httpx's) that waits ``TIMEOUT`` unless given a timeout."""
    return httpx.Client(**_waiting(kwargs))  # noqa: TID251 — the one place tests make one
