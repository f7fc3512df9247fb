"""What both stateful sync tests (``test_salesforce_stateful``, ``test_hubspot_stateful``) share: how a run dies."""

from __future__ import annotations

from service.sync.service import ProgressCallback


class Killed(Exception):
    """The sync process died (kill -9) right after committing a page."""


def killer(after: int) -> ProgressCallback:
    """A progress callback that kills the run once ``after`` pages are committed (the next page's commit raises)."""
    pages = 0

    def progress(stream: str, fetched: int, total: int) -> None:
        nonlocal pages
        pages += 1
        if pages > after:
            raise Killed(f"killed after {after} committed pages, in {stream}")

    return progress
