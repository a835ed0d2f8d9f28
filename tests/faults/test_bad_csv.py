"""Bad CSV input: each broken file fails alone with a message that says what and where, each broken
row is rejected with its record, line, column, value and code, and the rest of the file loads.

The loads go through `import_csv_file` into real hub databases (SQLite, and PostgreSQL for ragged
rows and NUL bytes, where the two differ); the flow around it is covered by the other fault modules.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tasks.csv.load import import_csv_file
from tasks.csv.reader import CsvFormat, Encoding
from tasks.hub.load import LoadSettings, SourceFile
from tasks.hub.mapping import CellFormats
from tasks.run.report import FileReport, Reject

SUPPLIERS = "Supplier External Id,Supplier Name,Description\n"


def load(
    engine: sa.Engine, folder: Path, data: bytes, *, encoding: Encoding = "utf-8", threshold: float = 50.0
) -> tuple[FileReport, list[Reject]]:
    """Load `data` as a suppliers file; return its report and first rejects."""
    path = folder / "in.csv"
    path.write_bytes(data)
    source = SourceFile("in/in.csv", path, len(data), None, hashlib.sha256(data).hexdigest())
    settings = LoadSettings(
        job="bad-csv",
        run_id="run-1",
        entity="suppliers",
        mapping=None,
        formats=CellFormats(),
        reject_threshold_percent=threshold,
    )
    return import_csv_file(
        engine,
        source,
        CsvFormat(delimiter=",", encoding=encoding),
        settings,
        rejects_dir=folder / "rejects",
        logger=logging.getLogger("test"),
    )


def suppliers(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("suppliers"):
            return []
        query = 'SELECT "supplierExternalId", "supplierName", "description" FROM suppliers ORDER BY 1'
        return [tuple(row) for row in conn.exec_driver_sql(query).all()]


def ledgered(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("datahub_ledger"):
            return 0
        return int(conn.exec_driver_sql("SELECT count(*) FROM datahub_ledger").scalar_one())


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Any:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


# -- whole-file faults: the file fails alone, nothing of it loads, the message says what to change --

BAD_FILES = [
    pytest.param(b"", "in/in.csv: the file is empty; a CSV file needs a header line.", id="empty-file"),
    pytest.param(
        b"Supplier External Id,Supplier Name,Supplier Name\nS1,a,b\n",
        "in/in.csv: the header repeats column(s) ['Supplier Name']",
        id="duplicate-header-names",
    ),
    pytest.param(
        SUPPLIERS.encode() + b'S1,"never closed,x\nS2,Acme,y\n',
        "in/in.csv: the file cannot be parsed as CSV",
        id="unterminated-quote",
    ),
    pytest.param(
        bytes(range(256)) * 64,
        "in/in.csv: byte 128 is not valid UTF-8 and the file holds NUL bytes: this is not a text CSV file",
        id="binary-garbage",
    ),
    pytest.param(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
        "in/in.csv: byte 0 is not valid UTF-8 and the file holds NUL bytes",
        id="binary-image",
    ),
    pytest.param(
        b"Supplier External Id,Supplier\x00Name\nS1,Acme\n",
        "in/in.csv: the header holds NUL bytes; this is not a text CSV file.",
        id="nul-byte-in-header",
    ),
    pytest.param(
        (SUPPLIERS + "S1,Société Générale,\n").encode("windows-1252"),
        "in/in.csv: byte 54 is not valid UTF-8",
        id="windows-1252-read-as-utf-8",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_FILES)
def test_a_broken_file_fails_alone_with_a_clear_message(
    sqlite_engine: sa.Engine, tmp_path: Path, data: bytes, message: str
) -> None:
    report, rejects = load(sqlite_engine, tmp_path, data)

    assert report.status == "FAILED"
    assert message in report.message
    assert "Traceback" not in report.message
    assert (report.rows_read, report.inserted, rejects) == (0, 0, [])
    assert suppliers(sqlite_engine) == []
    assert ledgered(sqlite_engine) == 0


def test_wrong_encoding_says_which_setting_to_change(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    data = (SUPPLIERS + "S1,Société Générale,\n").encode("windows-1252")
    failed, _ = load(sqlite_engine, tmp_path, data)
    assert "set `csv.encoding: windows-1252`" in failed.message
    fixed, _ = load(sqlite_engine, tmp_path, data, encoding="windows-1252")
    assert fixed.status == "SUCCESS"
    assert suppliers(sqlite_engine) == [("S1", "Société Générale", None)]


# -- row faults: the row is rejected with its place, the rest of the file loads -----------------------


def test_ragged_rows_are_rejected_one_by_one_and_the_rest_loads(engine: sa.Engine, tmp_path: Path) -> None:
    data = (
        SUPPLIERS
        + "S1,Acme,ok\n"
        + "S2,Too,many,fields\n"  # a delimiter too many
        + "S3\n"  # two fields missing
        + 'S4,"Quoted, fine",ok\n'
        + "S5,Short\n"  # one field missing
        + "S6,Trailing,delimiter,\n"  # an empty extra field is still one too many
        + "S7,Corp,\n"
    ).encode()

    report, rejects = load(engine, tmp_path, data, threshold=100)

    assert (report.status, report.rows_read, report.rejected, report.inserted) == ("PARTIAL", 7, 4, 3)
    assert [(r.record, r.line, r.column, r.value, r.code) for r in rejects] == [
        (2, 3, "(field 4)", "fields", "CSV-E-001"),
        (3, 4, "Supplier Name", None, "CSV-E-002"),
        (5, 6, "Description", None, "CSV-E-002"),
        (6, 7, "(field 4)", None, "CSV-E-001"),
    ]
    assert rejects[0].message.startswith("The record has 4 fields but the header has 3 columns")
    assert rejects[1].message.startswith("The record has 1 field(s) but the header has 3 columns")
    assert suppliers(engine) == [("S1", "Acme", "ok"), ("S4", "Quoted, fine", "ok"), ("S7", "Corp", None)]
    assert ledgered(engine) == 1


def test_ragged_rows_count_towards_the_reject_threshold(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    data = (SUPPLIERS + "S1,Acme,ok\nS2\nS3\n").encode()
    report, _ = load(sqlite_engine, tmp_path, data, threshold=10)
    assert report.status == "FAILED"
    assert "2 of 3 rows rejected" in report.message
    assert suppliers(sqlite_engine) == []


def test_a_nul_byte_in_a_cell_rejects_its_row_on_both_databases(engine: sa.Engine, tmp_path: Path) -> None:
    # PostgreSQL text cannot hold NUL: before the fix the bulk copy failed with a raw driver traceback.
    data = (SUPPLIERS + "S1,Ac\x00me,ok\nS2,Corp,ok\n").encode()
    report, rejects = load(engine, tmp_path, data)
    assert (report.status, report.inserted) == ("PARTIAL", 1)
    assert [(r.record, r.line, r.column, r.value, r.code) for r in rejects] == [
        (1, 2, "Supplier Name", "Ac\x00me", "CSV-E-003")
    ]
    assert suppliers(engine) == [("S2", "Corp", "ok")]


def test_a_1_mb_field_is_a_row_reject_and_stays_whole_only_in_the_rejects_file(
    sqlite_engine: sa.Engine, tmp_path: Path
) -> None:
    big = "x" * (1 << 20)
    data = (SUPPLIERS + f'S1,Acme,ok\nS2,"{big}",ok\nS3,Corp,"{big}"\nS4,Corp,ok\n').encode()

    report, rejects = load(sqlite_engine, tmp_path, data)

    assert (report.status, report.rows_read, report.inserted) == ("PARTIAL", 4, 2)
    assert [(r.record, r.column, r.code) for r in rejects] == [
        (2, "Supplier Name", "F-E-010"),
        (3, "Description", "F-E-010"),
    ]
    # The report (and so the artifact and the log) carries a shortened value, the rejects file all of it.
    assert all(r.value is not None and len(r.value) < 300 for r in rejects)
    assert "1,048,576 characters" in str(rejects[0].value)
    assert report.rejects_file is not None
    assert big in Path(report.rejects_file).read_text(encoding="utf-8")
