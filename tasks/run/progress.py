"""Progress of a long run: one Prefect progress artifact per run, updated at most once a second.

A CSV run counts the bytes read of each file (of its files, in a bulk run); an API run counts pages
(of `totalPages` when the API says it). Rows and rows per second go in the description. The run
opens it (`tasks.run.history.recorded_run`), the steps that read report to `current_progress()`,
and a step outside a run (a unit test, a preview) reports to nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from uuid import UUID

from tasks.run.report import artifact_key

PUBLISH_EVERY_SECONDS = 1.0

Publish = Callable[[float, str], None]
"""Show the progress (percent, description); the first call creates the artifact."""


@dataclass
class Progress:
    """Where a run is: files done of files, bytes of the current file, pages of pages, rows so far."""

    publish: Publish | None = None
    clock: Callable[[], float] = time.monotonic
    files: int = 0
    files_done: int = 0
    file_fraction: float = 0.0
    pages: int = 0
    total_pages: int | None = None
    rows: int = 0
    started: float = field(default=0.0)
    _last: float | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()

    def plan_files(self, count: int) -> None:
        """A bulk run found its files."""
        self.files = count
        self._show(force=True)

    def read(self, done: int, size: int | None, rows: int = 0) -> None:
        """The current file: `done` bytes read of `size`; `rows` more records read."""
        self.file_fraction = min(done / size, 1.0) if size else 0.0
        self.rows += rows
        self._show()

    def file_done(self) -> None:
        """The current file is loaded (or failed, or skipped)."""
        self.files_done += 1
        self.file_fraction = 0.0
        self._show()

    def page(self, rows: int, total_pages: int | None) -> None:
        """An API call brought one more page of `rows` records (of `total_pages`, when the API says)."""
        self.pages += 1
        self.rows += rows
        self.total_pages = total_pages if total_pages is not None else self.total_pages
        self._show()

    def finish(self, outcome: str) -> None:
        """The run ended: 100 %, with its outcome in the description."""
        if self.publish is not None:
            self.publish(100.0, f"{outcome}. {self.describe()}")

    def percent(self) -> float:
        """How far the run is, 0-100 (a run that cannot tell, an API without a total, stays at 0)."""
        if self.files:
            return 100.0 * min((self.files_done + self.file_fraction) / self.files, 1.0)
        if self.total_pages:
            return 100.0 * min(self.pages / self.total_pages, 1.0)
        return 0.0

    def describe(self) -> str:
        """The description: files or pages, rows and rows per second."""
        seconds = max(self.clock() - self.started, 1e-6)
        parts = []
        if self.files:
            parts.append(f"file {min(self.files_done + 1, self.files):,} of {self.files:,}")
        if self.pages:
            parts.append(f"page {self.pages:,}" + (f" of {self.total_pages:,}" if self.total_pages else ""))
        parts.append(f"{self.rows:,} rows, {self.rows / seconds:,.0f} rows/s")
        return ", ".join(parts)

    def _show(self, *, force: bool = False) -> None:
        if self.publish is None:
            return
        now = self.clock()
        if not force and self._last is not None and now - self._last < PUBLISH_EVERY_SECONDS:
            return
        self._last = now
        self.publish(self.percent(), self.describe())


_CURRENT: ContextVar[Progress | None] = ContextVar("datahub_progress", default=None)


def current_progress() -> Progress:
    """The progress of the run in progress, or one that shows nothing."""
    return _CURRENT.get() or Progress()


@contextmanager
def run_progress(publish: Publish | None) -> Iterator[Progress]:
    """Make a run's progress the current one for the steps it runs."""
    progress = Progress(publish)
    token = _CURRENT.set(progress)
    try:
        yield progress
    finally:
        _CURRENT.reset(token)


def prefect_progress(job: str) -> Publish:
    """Return a publisher to a progress artifact of the current flow run, made on its first call.

    A server that cannot take the update costs the run nothing but its progress bar.
    """
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.logging import get_run_logger

    artifact: list[UUID] = []

    def publish(percent: float, description: str) -> None:
        try:
            if not artifact:
                made = create_progress_artifact(
                    progress=percent, key=f"{artifact_key(job)}-progress", description=description
                )
                if isinstance(made, UUID):  # the flows are synchronous: never a coroutine here
                    artifact.append(made)
            else:
                update_progress_artifact(artifact[0], progress=percent, description=description)
        except Exception as exc:
            get_run_logger().warning("Could not update the run's progress artifact (%s).", exc)

    return publish
