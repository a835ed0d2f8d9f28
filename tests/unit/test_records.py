"""JSON records -> the text batches the CSV load path validates."""

from __future__ import annotations

from tasks.entities import entity
from tasks.mapping import CellFormats, validate_batch
from tasks.records import RecordMapper, cell_text

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
