"""Reading the next page while the current one is stored: order, errors, bounded look-ahead, an early stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from service.sync.read_ahead import read_ahead


def _pages(n: int, read: list[int], closed: threading.Event, fail_at: int | None = None) -> Iterator[int]:
    try:
        for i in range(n):
            if i == fail_at:
                raise RuntimeError(f"the CRM refused page {i}")
            read.append(i)
            yield i
    finally:
        closed.set()


def test_pages_arrive_in_order_and_the_reader_stays_at_most_one_page_ahead() -> None:
    read: list[int] = []
    closed = threading.Event()
    got = []
    with closing(read_ahead(_pages(6, read, closed))) as pages:
        for page in pages:
            time.sleep(0.05)  # storing: the reader has the next page ready, and no more than one waits
            assert len(read) <= page + 3, (page, read)  # this page, one handed over, one being read
            got.append(page)
    assert got == list(range(6)) and closed.is_set()


def test_an_error_of_the_connector_reaches_the_caller_after_the_pages_before_it() -> None:
    read: list[int] = []
    closed = threading.Event()
    got = []
    failing = _pages(6, read, closed, fail_at=3)
    with pytest.raises(RuntimeError, match="the CRM refused page 3"), closing(read_ahead(failing)) as p:
        for page in p:
            got.append(page)
    assert got == [0, 1, 2] and closed.is_set()


def test_a_caller_that_stops_early_stops_the_reader_and_closes_the_connectors_pages() -> None:
    read: list[int] = []
    closed = threading.Event()
    with pytest.raises(ValueError, match="storing failed"), closing(read_ahead(_pages(1000, read, closed))) as pages:
        for page in pages:
            if page == 2:
                raise ValueError("storing failed")
    assert closed.wait(2), "the connector's generator was closed"
    assert len(read) <= 5, read  # it read at most a page or two beyond the one that failed
