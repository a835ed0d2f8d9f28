"""What a terminal shows of a run: the report's reject lines, and the one line `./dev run` ends with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from tasks.run import FileReport, ImportReport, RejectSink, outcome_line, render_text


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


def _rejects(*rows: tuple[int, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"record": r, "line": r + 1, "column": c, "value": v, "code": "F-E-001", "message": "m"}
            for r, v, c in rows
        ],
        schema={"record": pl.Int64, "line": pl.Int64, "column": pl.String, "value": pl.String,
                "code": pl.String, "message": pl.String},
    )  # fmt: skip


def test_the_report_lists_rejects_in_record_order_and_says_blank(tmp_path: Path) -> None:
    sink = RejectSink(tmp_path / "a.rejects.csv")
    sink.add(_rejects((7, "x", "Price"), (9, None, "Name")))  # the batches' checks
    sink.add(_rejects((2, None, "Product Names")))  # the database's check comes last
    report = _report(status="PARTIAL", rejects=sink.sample)
    lines = [line for line in render_text(report).splitlines() if "reject record" in line]
    assert lines == [
        "    reject record 2 (line 3) Product Names=(blank): F-E-001 m",
        "    reject record 7 (line 8) Price='x': F-E-001 m",
        "    reject record 9 (line 10) Name=(blank): F-E-001 m",
    ]
