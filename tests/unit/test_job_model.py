"""Invalid CSV jobs fail before any I/O, at the field's location, with the fix (house style §4.8)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flows.import_csv_from_ftp import CsvImportJob

VALID: dict[str, Any] = {
    "name": "products-from-erp-ftp",
    "connection": "erp-ftp",
    "entity": "products",
    "source": {"kind": "folder", "inbound_dir": "in", "outbound_dir": "out"},
    "csv": {"delimiter": ";"},
}

INVALID = [
    pytest.param({"csv": {}}, "csv.delimiter", "Field required", id="delimiter-has-no-default"),
    pytest.param(
        {"csv": {"delimiter": "|"}}, "csv.delimiter", "Input should be ',' or ';'", id="delimiter-not-allowed"
    ),
    pytest.param({"delimeter": ";"}, "delimeter", "Extra inputs are not permitted", id="typo-is-rejected"),
    pytest.param({"entity": "product"}, "entity", "Input should be 'products'", id="unknown-entity"),
    pytest.param(
        {"source": {"kind": "folder", "inbound_dir": "in"}},
        "source.folder.outbound_dir",
        "Field required",
        id="bulk-needs-outbound",
    ),
    pytest.param(
        {"source": {"kind": "file", "inbound_dir": "in"}},
        "source.file.file_path",
        "Field required",
        id="single-file-needs-its-path",
    ),
    pytest.param(
        {"source": {"file_path": "a.csv"}},
        "source",
        "Unable to extract tag using discriminator",
        id="no-kind",
    ),
    pytest.param(
        {"mapping": {"Id": "productExternalId", "Name": "productName"}},
        "",
        "`productName`, which products does not have; valid fields: productExternalId, productNames",
        id="unknown-field-lists-valid-ones",
    ),
    pytest.param(
        {"mapping": {"Name": "productNames"}},
        "",
        "the key ['productExternalId'] of products is not mapped",
        id="key-must-be-mapped",
    ),
    pytest.param(
        {"mapping": {"Id": "productExternalId", "Name": "productNames", "Title": "productNames"}},
        "",
        "fields ['productNames'] are mapped from more than one column",
        id="field-mapped-twice",
    ),
    pytest.param(
        {"reject_threshold_percent": 120},
        "reject_threshold_percent",
        "less than or equal to 100",
        id="threshold",
    ),
    pytest.param({"name": "bad name!"}, "name", "String should match pattern", id="job-name"),
    pytest.param(
        {"formats": {"decimal_separator": ";"}},
        "formats.decimal_separator",
        "should match pattern",
        id="decimal",
    ),
]


@pytest.mark.parametrize(("override", "location", "message"), INVALID)
def test_invalid_job_is_explained(override: dict[str, Any], location: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CsvImportJob.model_validate(VALID | override)
    error = caught.value.errors()[0]
    assert ".".join(map(str, error["loc"])) == location
    assert message in error["msg"]


def test_valid_job_defaults() -> None:
    job = CsvImportJob.model_validate(VALID)
    assert job.source.kind == "folder"
    assert job.source.pattern == "*.csv"  # type: ignore[union-attr]
    assert job.reject_threshold_percent == 10
    assert job.target is None
    assert job.force is False


def test_every_field_has_help_text_for_the_ui_form() -> None:
    schema = CsvImportJob.model_json_schema()
    missing: list[str] = []

    def walk(node: dict[str, Any], where: str) -> None:
        for name, prop in node.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{where}.{name}")

    walk(schema, "job")
    for name, definition in schema.get("$defs", {}).items():
        walk(definition, name)
    assert missing == []


@pytest.mark.parametrize("empty", [None, {}], ids=["null", "empty-dict"])
def test_an_empty_mapping_means_the_standard_headers(empty: dict[str, str] | None) -> None:
    # The run form's JSON editor sends null (left as shown) or {} (emptied): both mean "no mapping".
    job = CsvImportJob.model_validate(VALID | {"mapping": empty})
    assert job.mapping is None
    assert job.model_dump()["mapping"] is None
