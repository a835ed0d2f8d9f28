"""One file session held for a whole run, and the download of the next file while the current one loads.

A bulk run of 1,000 small files used to log in twice per file (once to download, once to move): on
a loopback server that was most of a file's time. `HeldSession` logs in on first use and keeps the
session; any failure inside a use drops it (the connection may be half-way through a command), and
the next use logs in again. Uses are one at a time (a lock): the download of the next file, on a
helper thread, and the move of the current one share the session, one command after the other.

`Prefetcher` downloads at most one file ahead of the one being loaded: files still load one at a
time, oldest first; only the transfer of the next overlaps the load of the current one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Generic, TypeVar

from blocks.ftp import FtpConnection
from tasks.files.session import FileSession, open_session

T = TypeVar("T")
R = TypeVar("R")


class HeldSession:
    """A logged-in session on the connection's server, opened on first use and kept until `close`."""

    def __init__(self, connection: FtpConnection) -> None:
        self.connection = connection
        self.logins = 0
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._session: FileSession | None = None

    @contextmanager
    def use(self) -> Iterator[FileSession]:
        """Yield the session (logging in if there is none); a failure inside drops it."""
        with self._lock:
            if self._session is None:
                stack = ExitStack()
                self._session = stack.enter_context(open_session(self.connection))
                self._stack = stack
                self.logins += 1
            try:
                yield self._session
            except BaseException:
                self._drop()
                raise

    def close(self) -> None:
        """Log out (quietly: a session that broke has nothing left to say)."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        # Logging out of a broken connection fails; it is gone either way.
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.close()

    def __enter__(self) -> HeldSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Prefetcher(Generic[T, R]):
    """Run `fetch` on each item in order, at most one item ahead of the consumer.

    `results()` yields `(item, future)` pairs in order; when the consumer takes item N, the fetch of
    item N+1 starts, unless both have the same `key` (the same remote path, listed twice: a file a
    stopped run left claimed, and a new upload under its name), which is fetched only once item N
    is done with. A future holds the fetch's result or its error, raised where the consumer asks for
    it, so one file's failure stays that file's. `ahead()` is the item fetched beyond the current
    one, so a run that stops can put it back.
    """

    def __init__(self, items: list[T], fetch: Callable[[T], R], key: Callable[[T], object]) -> None:
        self._items = items
        self._fetch = fetch
        self._key = key
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        self._ahead: tuple[T, Future[R]] | None = None

    def results(self) -> Iterator[tuple[T, Future[R]]]:
        """Yield each item with the future of its fetch, in order."""
        items = self._items
        try:
            current = self._submit(0)
            for index, item in enumerate(items):
                if current is None:  # held back: it shares its key with the item before it
                    current = self._submit(index)
                assert current is not None
                following = index + 1
                if following < len(items) and self._key(items[following]) != self._key(item):
                    self._ahead = self._submit(following)
                yield current
                current, self._ahead = self._ahead, None
        finally:
            self._pool.shutdown(wait=True)

    def ahead(self) -> tuple[T, Future[R]] | None:
        """The item being fetched beyond the current one, if any (its future may still be running)."""
        return self._ahead

    def _submit(self, index: int) -> tuple[T, Future[R]] | None:
        if index >= len(self._items):
            return None
        item = self._items[index]
        return item, self._pool.submit(self._fetch, item)
