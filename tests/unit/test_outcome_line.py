"""The one line `./dev run` prints after a run (the whole report is in the run's log above it)."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.run import FileReport, ImportReport, outcome_line


def _report(**fields: object) -> ImportReport:
    return ImportReport(
        job="erp-products", entity="products", run_id="r1", started_at=datetime.now(UTC), **fields
    )  # type: ignore[arg-type]


def test_the_outcome_is_one_line_with_the_counts() -> None:
    report = _report(status="PARTIAL")
    report.files.append(
        FileReport(
            path="in/a.csv",
            status="PARTIAL",
            rows_read=1200,
            inserted=1000,
            updated=150,
            unchanged=48,
            rejected=2,
        )
    )
    assert outcome_line(report) == (
        "erp-products: PARTIAL: rows read 1,200, inserted 1,000, updated 150, unchanged 48, rejected 2"
    )


def test_a_failed_run_says_why_on_the_same_line() -> None:
    report = _report(status="FAILED", error="erp-ftp: login refused (530). Check the block's password.")
    assert outcome_line(report) == (
        "erp-products: FAILED: rows read 0, inserted 0, updated 0, unchanged 0, rejected 0; "
        "erp-ftp: login refused (530). Check the block's password."
    )
