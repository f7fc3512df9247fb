"""The error answer of the sandbox Salesforce org, in a leaf module: the API router renders it, and the record
writes (``salesforce_writes``) and Bulk API 2.0 jobs (``salesforce_bulk``) that the router serves raise it.

Errors::

    ApiError    an HTTP status with Salesforce's errorCode and message, answered as ``[{"message", "errorCode"}]``
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: HTTP status plus Salesforce errorCode and message."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message
