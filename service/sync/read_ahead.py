"""Read the next page from the CRM while the current one is stored.

A sync alternates two waits: the CRM's answer (network, the CRM's own time) and the database's write. Reading one
page ahead in a thread overlaps them; at most ``depth`` pages wait unstored, so a crash still loses only pages that
were never committed (the cursor moves with each stored page) and memory stays bounded.

Everything the connector does happens in the reading thread, one call after another as before; the caller only
receives the pages. An error of the connector (a limit reached, a refused token) reaches the caller where the page
would have, with its own traceback. When the caller stops early (an error while storing, a limit), the reading
thread stops before its next page and the connector's generator is closed there.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(pages: Iterator[T], *, depth: int = 1, name: str = "okrsync-read-ahead") -> Generator[T, None, None]:
    """Yield ``pages``' items in order while the next ``depth`` are read in a thread."""
    waiting: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                waiting.put((item, error), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if stop.is_set() or not offer(page):
                    break
            else:
                offer(_DONE)
        except BaseException as exc:  # noqa: BLE001 — handed to the caller, raised there
            offer(_DONE, exc)
        finally:
            if isinstance(pages, Generator):
                pages.close()

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            item, error = waiting.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting to hand over a page, then let it finish its call
            try:
                waiting.get_nowait()
            except queue.Empty:
                reader.join(timeout=0.05)
