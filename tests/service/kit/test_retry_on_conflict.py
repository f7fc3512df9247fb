"""A transaction PostgreSQL aborted to break a deadlock (40P01) or a serialization conflict (40001) runs again;
other database errors pass through at once."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from service.kit.db import retry_on_conflict


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _failing(codes: list[str]):  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        if codes:
            raise OperationalError("UPDATE webhook_event …", {}, _PgError(codes.pop(0)))
        return "done"

    return work, calls


@pytest.mark.parametrize("code", ["40P01", "40001"], ids=["deadlock", "serialization"])
def test_aborted_transactions_run_again(code: str) -> None:
    work, calls = _failing([code, code])
    assert retry_on_conflict(work) == "done" and len(calls) == 3


def test_other_errors_and_exhausted_attempts_pass_through() -> None:
    work, calls = _failing(["08006"])  # connection failure: not ours to retry here
    with pytest.raises(OperationalError):
        retry_on_conflict(work)
    assert len(calls) == 1
    work, calls = _failing(["40P01"] * 3)
    with pytest.raises(OperationalError):
        retry_on_conflict(work, attempts=3)
    assert len(calls) == 3
