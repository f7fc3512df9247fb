"""The errors ``service/`` raises for its callers, with one root that carries the HTTP status the API answers with.

    ServiceError            400: the request cannot be done; the message says what is wrong and where
    ├── NotFoundError       404: what the request names does not exist (a mapping, a sprint, a key result)
    ├── ConflictError       409: the request is fine but the state forbids it (a cycle rule, an ended cycle)
    └── InvalidError        422: the request's content is wrong (a check-in's confidence, a sprint that overlaps)

Domains subclass these (``CycleRuleError``, ``SprintError``, ``CheckInError``…); the app renders every
``ServiceError`` in one handler (``service.app``) as ``{"error", "detail"}`` with ``status``, so a route never
chooses a status by reading a message. The CLI prints the message."""

from __future__ import annotations


class ServiceError(Exception):
    status: int = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFoundError(ServiceError):
    status = 404


class ConflictError(ServiceError):
    status = 409


class InvalidError(ServiceError):
    status = 422
