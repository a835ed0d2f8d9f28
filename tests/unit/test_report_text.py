"""What a terminal and the runs lists show of a run: reject lines, the outcome line, the state, the tags."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from tasks.run import FileReport, ImportReport, RejectSink, outcome_line, render_markdown, render_text
from tasks.run.report import final_state, outcome_words, run_title, status_tag


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
        "erp-products: PARTIAL: 1 file, rows read 1,200, inserted 1,000, updated 150, unchanged 48, rejected 2"
    )
    assert (status_tag(report), outcome_words(report)) == ("datahub:partial", "2 of 1,200 rejected")
    assert run_title(report) == "PARTIAL · 2 of 1,200 rejected · erp-products"
    state = final_state(report)
    # Prefect's own name: "All except scheduled" lists it (a custom name hid the run).
    assert (state.name, state.message) == ("Completed", outcome_line(report).removeprefix("erp-products: "))


def test_a_failed_run_says_why_on_the_same_line() -> None:
    report = _report(status="FAILED", error="erp-ftp: login refused (530). Check the block's password.")
    assert outcome_line(report) == (
        "erp-products: FAILED: erp-ftp: login refused (530). Check the block's password. "
        "(0 files, rows read 0, inserted 0, updated 0, unchanged 0, rejected 0)"
    )
    assert final_state(report).name == "Failed"
    assert outcome_words(report) == "erp-ftp: login refused (530). Check the block's password."


def test_a_failed_file_is_named_in_the_message_and_left_out_of_the_run_name() -> None:
    report = _report(status="FAILED")
    report.files += [
        FileReport(path="in/a.csv", status="SUCCESS", rows_read=3, inserted=3),
        FileReport(path="in/b.csv", status="FAILED", message="in/b.csv: the key ['productExternalId'] "
                   "of products is not mapped; map a column onto it"),
        FileReport(path="in/c.csv", status="FAILED", message="too many rejects"),
    ]  # fmt: skip
    assert outcome_line(report) == (
        "erp-products: FAILED: in/b.csv: the key ['productExternalId'] of products is not mapped; map a "
        "column onto it (and 1 more failed file(s)) (3 files, rows read 3, inserted 3, updated 0, "
        "unchanged 0, rejected 0)"
    )
    assert outcome_words(report) == "the key ['productExternalId'] of products is not mapped; ma…"
    assert len(outcome_words(report)) == 60


def test_a_skipped_run_says_why_and_an_api_run_counts_pages() -> None:
    report = _report(status="SKIPPED", kind="json-api", pages=1)
    report.files.append(
        FileReport(path="list", status="SKIPPED", message="The last call returned no records.")
    )
    assert outcome_line(report) == (
        "erp-products: SKIPPED: The last call returned no records. (1 page, rows read 0, inserted 0, "
        "updated 0, unchanged 0, rejected 0)"
    )
    assert (status_tag(report), outcome_words(report)) == (
        "datahub:skipped",
        "The last call returned no records.",
    )
    assert outcome_words(_report(status="SKIPPED")) == "nothing new to import"
    loaded = _report(status="SUCCESS", kind="json-api", pages=12)
    loaded.files.append(FileReport(path="list", status="SUCCESS", rows_read=1200, inserted=1000, updated=200))
    assert outcome_line(loaded).startswith("erp-products: SUCCESS: 12 pages, rows read 1,200, inserted 1,000")
    assert outcome_words(loaded) == "1,200 read, 1,000 new, 200 updated"


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


def test_the_summary_artifact_leads_with_the_reason_and_keeps_long_notes_whole() -> None:
    long_reason = "the column `Price` holds " + "x" * 600 + " | and more"
    report = _report(status="FAILED")
    report.files += [
        FileReport(path="in/a.csv", status="PARTIAL", rows_read=3, inserted=2, rejected=1,
                   moved_to="out/a.csv", rejects_file="/w/rejects/a.csv", ignored_columns=["Product Name", "x"],
                   near_misses={"Product Name": "Product Names"}),
        FileReport(path="in/b.csv", status="FAILED", message=long_reason),
    ]  # fmt: skip
    assert "      ignored columns: Product Name (did you mean Product Names?), x" in render_text(report)
    markdown = render_markdown(report)
    lines = markdown.splitlines()
    assert lines[0] == "# erp-products: FAILED"
    assert lines[2].startswith("**Why it failed:** in/b.csv: the column \\`Price\\` holds xxx")
    assert lines[2].endswith("xxx \\| and more")  # whole, escaped: a note is never clipped
    assert lines[4].startswith("2 files, rows read 3, inserted 2, updated 0, unchanged 0, rejected 1. Entity")
    assert "| 1 | `in/a.csv` | PARTIAL | 3 | 2 | 0 | 0 | 1 | 0 |" in lines
    notes = lines[lines.index("Notes:") + 2 :]
    assert notes == [
        "- **1** `in/a.csv`",
        "  - ignored columns: Product Name (did you mean Product Names?), x",
        "  - moved to `out/a.csv`",
        "  - 1 rejected: `python -m deployments rejects r1`; on the worker: `/w/rejects/a.csv`",
        f"- **2** `in/b.csv`: {lines[2].removeprefix('**Why it failed:** in/b.csv: ')}",
    ]
