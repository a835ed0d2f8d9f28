"""JSON records -> the text batches the CSV load path validates."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tasks.api.records import RecordMapper, cell_text
from tasks.api.spool import SpoolWriter, export_spool
from tasks.errors import SourceUnavailableError
from tasks.hub.entities import entity
from tasks.hub.mapping import CellFormats, validate_batch

RECORDS = [
    {
        "productId": "000820",
        "name": "red cotton shirt",
        "isEnable": True,
        "weight": {"amount": 0, "unit": "PIECE"},
        "eans": ["0442301152930", "000042"],
        "nomenclatures": [{"nomenclatureId": "0001-0028"}],
        "price": 12.5,
    },
    {"productId": "000821", "name": "blue", "isEnable": False, "eans": [], "nomenclatures": [], "price": 3},
]
MAPPING = {
    "$.productId": "productExternalId",
    "$.name": "productNames",
    "$.nomenclatures[0].nomenclatureId": "productClassificationCategoryId",
    "$.eans[*]": "productTags",
    "$.isEnable": "inactiveProduct",
    "$.weight": "productDescriptions",
    "$.price": "productUnit",
}


def test_cells_are_written_like_csv_cells() -> None:
    assert cell_text(True) == "TRUE"
    assert cell_text(False) == "FALSE"
    assert cell_text(12.5) == "12.5"
    assert cell_text(3) == "3"
    assert cell_text(None) is None
    assert cell_text({"a": [1]}) == '{"a":[1]}'


def test_records_become_a_text_frame_numbered_by_record() -> None:
    mapper = RecordMapper(MAPPING)
    frame = mapper.frame(RECORDS)
    assert frame.columns == ["_record", "_line", *MAPPING.values()]
    rows = frame.rows(named=True)
    assert rows[0] == {
        "_record": 1,
        "_line": 1,
        "productExternalId": "000820",
        "productNames": "red cotton shirt",
        "productClassificationCategoryId": "0001-0028",
        "productTags": "0442301152930||000042",
        "inactiveProduct": "TRUE",
        "productDescriptions": '{"amount":0,"unit":"PIECE"}',
        "productUnit": "12.5",
    }
    assert rows[1]["_record"] == 2
    assert rows[1]["productTags"] is None
    assert rows[1]["inactiveProduct"] == "FALSE"
    assert rows[1]["productUnit"] == "3"
    assert mapper.warnings == []


def test_the_plan_and_validation_apply_unchanged() -> None:
    mapper = RecordMapper(MAPPING)
    plan = mapper.plan(entity("products"), name="list")
    validated = validate_batch(mapper.frame(RECORDS), plan, CellFormats())
    assert validated.rejected_records == 1  # the second record has no classification: required
    reject = validated.rejects.row(0, named=True)
    assert (reject["record"], reject["line"], reject["column"], reject["code"]) == (
        2,
        2,
        "productClassificationCategoryId",
        "F-E-001",
    )
    assert validated.rows["productTags"].to_list()[0] == '["0442301152930","000042"]'


def test_a_path_matching_nothing_in_a_page_is_warned_once() -> None:
    mapper = RecordMapper({"$.productId": "productExternalId", "$.Name": "productNames"})
    list(mapper.batches(RECORDS, batch_records=1, page="list"))
    assert len(mapper.warnings) == 1
    assert "`$.Name`" in mapper.warnings[0]
    assert "productNames" in mapper.warnings[0]


def test_batches_keep_the_record_numbers() -> None:
    mapper = RecordMapper({"$.productId": "productExternalId"})
    batches = list(mapper.batches(RECORDS * 3, batch_records=4))
    assert [b["_record"].to_list() for b in batches] == [[1, 2, 3, 4], [5, 6]]


@pytest.mark.parametrize(
    ("path", "record", "cell"),
    [
        pytest.param("$.a.b", {"a": {"b": 1.5}}, "1.5", id="dotted"),
        pytest.param("$.a.b", {"a": {"c": 1}}, None, id="dotted-missing"),
        pytest.param("$.a.b", {"a": [1]}, None, id="dotted-through-a-list"),
        pytest.param("$.a[1].b", {"a": [{"b": "x"}, {"b": "y"}]}, "y", id="index"),
        pytest.param("$.a[-1]", {"a": ["x", "y"]}, "y", id="negative-index"),
        pytest.param("$.a[5]", {"a": ["x"]}, None, id="index-out-of-range"),
        pytest.param(
            "$.a[*].b", {"a": [{"b": 1}, {"c": 2}, {"b": None}, {"b": True}]}, "1||TRUE", id="wildcard"
        ),
        pytest.param("$.a[*]", {"a": {"k": "v", "l": "w"}}, "v||w", id="wildcard-of-an-object"),
        pytest.param("$.a[*]", {"a": []}, None, id="wildcard-empty"),
        pytest.param("$.a[*][*]", {"a": [[1, 2], [3]]}, "1||2||3", id="two-wildcards"),
        pytest.param("$.a[?(@.k == 2)].v", {"a": [{"k": 1, "v": "x"}, {"k": 2, "v": "y"}]}, "y", id="filter"),
        pytest.param("$['a b'].c", {"a b": {"c": {"d": [1]}}}, '{"d":[1]}', id="quoted-key-object"),
    ],
)
def test_fast_and_generic_paths_give_the_same_cells(path: str, record: Any, cell: str | None) -> None:
    assert RecordMapper({path: "productNames"}).frame([record])["productNames"].to_list() == [cell]


def test_batches_take_a_stream_and_number_across_batches() -> None:
    mapper = RecordMapper({"$.productId": "productExternalId"})
    stream = (dict(record) for record in RECORDS * 3)
    batches = list(mapper.batches(stream, batch_records=4))
    assert [b["_record"].to_list() for b in batches] == [[1, 2, 3, 4], [5, 6]]


ORDERS = [
    {"id": "O1", "lines": [{"n": "L1", "q": 2}, {"n": "L2", "q": 1}]},
    {"id": "O2", "lines": []},
    {"id": "O3", "lines": [{"n": "L1", "q": 5}]},
]


def _order_mapper() -> RecordMapper:
    return RecordMapper(
        {"$.id": "orderExternalId"},
        child_path="$.lines",
        child_mapping={"$.n": "orderLineExternalId", "$.q": "orderLineQuantity"},
    )


def test_a_nested_list_becomes_child_rows_with_the_parent_repeated() -> None:
    assert _order_mapper().frame(ORDERS).rows() == [
        (1, 1, "O1", "L1", "2"),
        (2, 1, "O1", "L2", "1"),
        (3, 3, "O3", "L1", "5"),  # `_record` counts rows, `_line` is the order's position
    ]
    mapper = _order_mapper()
    batches = list(mapper.batches(ORDERS * 2, batch_records=3, page="orders"))
    assert [b["_record"].to_list() for b in batches] == [[1, 2, 3], [4, 5, 6]]
    assert [b["_line"].to_list() for b in batches] == [[1, 1, 3], [4, 4, 6]]
    assert mapper.warnings == [
        "2 record(s) had no items in `$.lines` and were not loaded (records 2, 5 of orders): each row "
        "needs its child key."
    ]
    plan = mapper.plan(entity("orders"), name="orders")
    assert [table.name for table in plan.tables] == ["orders", "order_lines"]


def test_a_child_path_matching_nothing_is_warned() -> None:
    mapper = RecordMapper(
        {"$.id": "orderExternalId"}, child_path="$.lines", child_mapping={"$.N": "orderLineExternalId"}
    )
    mapper.frame(ORDERS)
    assert ["`$.N` (-> orderLineExternalId) matched nothing" in w for w in mapper.warnings] == [True]


# --- the spool: responses on disk, records streamed back ---------------------------------------------


def test_the_spool_keeps_pages_in_order_and_streams_their_records(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "calls" / "list.ndjson.gz", "$.elements", paged=True)
    pages = [{"elements": [{"id": 1}, {"id": 2}]}, {"elements": [{"id": 3}]}]
    writer.write(pages[0], 2, raw=json.dumps(pages[0]).encode())
    pretty = json.dumps(pages[1], indent=2).encode()  # several lines: written again on one line
    writer.write(pages[1], 1, raw=pretty)
    spool = writer.close()
    assert (spool.responses, spool.records) == (2, 2 + 1)
    assert [r["id"] for r in spool.records_iter()] == [1, 2, 3]
    with gzip.open(spool.path, "rt", encoding="utf-8") as lines:
        assert [json.loads(line) for line in lines] == pages


def test_a_whole_response_spool_uses_the_content_path_rules(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "one.ndjson.gz", None, paged=False)
    writer.write({"id": "single"}, 1)
    assert list(writer.close().records_iter()) == [{"id": "single"}]


def test_a_spool_is_exported_to_a_folder_or_fsspec_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SpoolWriter(tmp_path / "s.ndjson.gz", "$.e", paged=True)
    writer.write({"e": [1]}, 1)
    spool = writer.close()
    # Where exports may go is the worker's environment's decision (DATAHUB_EXPORT_ROOT), never the run's.
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", str(tmp_path / "exports"))
    target = export_spool(spool, str(tmp_path / "exports" / "deep"), "job-call-20260101T000000Z")
    assert Path(target).read_bytes() == spool.path.read_bytes()
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", "memory://exports")
    memory = export_spool(spool, "memory://exports/", "job-call")
    assert memory == "memory://exports/job-call.ndjson.gz"
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", "nosuchprotocol://x")
    with pytest.raises(SourceUnavailableError, match="Could not export the pages"):
        export_spool(spool, "nosuchprotocol://x", "job-call")


def test_a_failed_call_leaves_no_spool(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "s.ndjson.gz", "$.e", paged=True)
    writer.write({"e": [1]}, 1)
    writer.discard()
    assert list(tmp_path.iterdir()) == []
