"""The run's progress: what its artifact shows, and no more than once a second."""

from __future__ import annotations

from tasks.run import Progress, current_progress, run_progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bulk_run_counts_files_and_the_bytes_of_the_current_one_at_most_once_a_second() -> None:
    shown: list[tuple[float, str]] = []
    clock = Clock()
    progress = Progress(lambda percent, text: shown.append((percent, text)), clock=clock)
    progress.plan_files(4)  # always shown: the run found its files
    clock.now += 0.5
    progress.read(500, 1_000, rows=5_000)  # under a second after the last: not shown
    clock.now += 0.6
    progress.read(1_000, 1_000, rows=5_000)
    progress.file_done()  # the same second: not shown
    clock.now += 1.0
    progress.read(250, 1_000, rows=2_000)
    assert shown == [
        (0.0, "file 1 of 4, 0 rows, 0 rows/s"),
        (25.0, "file 1 of 4, 10,000 rows, 9,091 rows/s"),
        (31.25, "file 2 of 4, 12,000 rows, 5,714 rows/s"),
    ]
    progress.finish("PARTIAL: 4 files")
    assert shown[-1] == (100.0, "PARTIAL: 4 files. file 2 of 4, 12,000 rows, 5,714 rows/s")


def test_an_api_run_counts_pages_of_the_total_when_the_api_says_it() -> None:
    shown: list[tuple[float, str]] = []
    clock = Clock()
    progress = Progress(lambda percent, text: shown.append((percent, text)), clock=clock)
    clock.now += 2
    progress.page(100, total_pages=8)
    assert shown == [(12.5, "page 1 of 8, 100 rows, 50 rows/s")]
    without_total = Progress(lambda percent, text: shown.append((percent, text)), clock=clock)
    clock.now += 1
    without_total.page(100, total_pages=None)
    assert shown[-1] == (0.0, "page 1, 100 rows, 100 rows/s")


def test_steps_outside_a_run_report_to_nothing_and_a_run_makes_its_own_current() -> None:
    current_progress().read(10, 100, rows=1)  # no run: shown nowhere, no error
    shown: list[float] = []
    with run_progress(lambda percent, _text: shown.append(percent)) as progress:
        assert current_progress() is progress
        current_progress().plan_files(2)
    assert shown == [0.0]
    assert current_progress() is not progress
