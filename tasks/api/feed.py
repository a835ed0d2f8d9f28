"""Hand a paging call's records to a load that runs at the same time, a few pages at a time.

Without it the last call of an API job fetches every page first and the load reads them back from
the spool afterwards, so the two times add up (100k records: ~4 s of calls, then ~5 s of load, a third
of it parsing the spooled JSON again). With a feed, the flow submits the load task first and the
paging call puts each page's records into a small bounded queue as the pages arrive (in page order):
the load parses nothing again and works while the next pages are on the wire. Memory stays bounded
by the queue. Either side failing stops the other: a failed call makes the load raise (its one
transaction rolls back), a failed load makes the call stop instead of blocking on a full queue.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

from tasks.api.jsonpath import JsonValue
from tasks.errors import CallFailedError, FeedAbandonedError

PAGES_IN_FLIGHT = 16
_POLL_SECONDS = 0.2


class _End:
    """Marks the end of the feed: `error` is None when the call finished normally."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class RecordFeed:
    """A bounded, ordered queue of pages' records between one producer (the call) and one consumer (the load).

    A plain class on purpose: Prefect walks dataclasses and models passed to tasks, looking for futures.
    """

    def __init__(self, max_pages: int = PAGES_IN_FLIGHT) -> None:
        self._pages: queue.Queue[list[JsonValue] | _End] = queue.Queue(maxsize=max_pages)
        self._abandoned = threading.Event()
        self._ended = False

    def put(self, records: list[JsonValue]) -> None:
        """Add one page's records; raise FeedAbandonedError when the load is no longer reading."""
        self._offer(records)

    def finish(self) -> None:
        """Say that every page was put: the load may commit."""
        self._end(None)

    def fail(self, error: BaseException) -> None:
        """Say that the call failed: the load raises and rolls back."""
        self._end(error)

    def records_iter(self) -> Iterator[JsonValue]:
        """Yield every record in page order until the call finishes; raise if it failed."""
        try:
            while True:
                item = self._pages.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise CallFailedError(f"The call failed, so nothing was loaded: {item.error}")
                    return
                yield from item
        finally:
            self._abandoned.set()

    def close(self) -> None:
        """Say that the load stopped reading (it finished or failed): a waiting call stops at once.

        The load calls this itself rather than relying on its generator being closed, which a
        traceback holding the generator's frame could delay for ever.
        """
        self._abandoned.set()

    def _end(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        with contextlib.suppress(FeedAbandonedError):  # the load already stopped: nobody waits for the end
            self._offer(_End(error))

    def _offer(self, item: list[JsonValue] | _End) -> None:
        while True:
            if self._abandoned.is_set():
                raise FeedAbandonedError("The load stopped reading the pages (see its error).")
            try:
                self._pages.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue
