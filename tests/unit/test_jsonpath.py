"""JSONPaths: the accepted forms, the fast path, `[*]` joining and the validation message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tasks.api.jsonpath import (
    JsonPath,
    compile_jsonpath,
    extract_value,
    find_all,
    find_first,
    normalise_jsonpath,
    validate_jsonpath,
)

ORDER: dict[str, Any] = {
    "object": {"status": "AVAILABLE"},
    "statusFile": "PENDING",
    "paging": {"totalPages": 3},
    "eans": ["0442301152930", "000042"],
    "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": None}],
    "odd key": {"x-y": 5},
    "flags": [True, False],
}


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        pytest.param("statusFile", "$.statusFile", id="bare-key"),
        pytest.param("object.status", "$.object.status", id="dotted"),
        pytest.param("$.object.status", "$.object.status", id="already-normal"),
        pytest.param("  $.a  ", "$.a", id="spaces"),
        pytest.param("[0].id", "$[0].id", id="leading-index"),
    ],
)
def test_paths_are_normalised_to_dollar_form(written: str, normal: str) -> None:
    assert normalise_jsonpath(written) == normal
    assert validate_jsonpath(written) == normal


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("statusFile", "PENDING", id="bare-key"),
        pytest.param("object.status", "AVAILABLE", id="dotted"),
        pytest.param("$.object.status", "AVAILABLE", id="dollar"),
        pytest.param("$.eans[1]", "000042", id="index"),
        pytest.param("$.lines[-1].sku", None, id="negative-index-null"),
        pytest.param("$.lines[0].qty", 1, id="keeps-type"),
        pytest.param("$.missing.deeper", None, id="missing"),
        pytest.param("$.eans[9]", None, id="index-out-of-range"),
        pytest.param("$.statusFile.deeper", None, id="key-on-a-string"),
        pytest.param("$['odd key']['x-y']", 5, id="quoted-keys"),
        pytest.param("$.eans[*]", "0442301152930||000042", id="wildcard-joined"),
        pytest.param("$.lines[*].sku", "A||B", id="wildcard-skips-null"),
        pytest.param("$.lines[*].qty", "1||2", id="wildcard-numbers-as-text"),
        pytest.param("$.flags[*]", "true||false", id="wildcard-booleans-as-json"),
        pytest.param("$.nothing[*]", None, id="wildcard-no-match"),
        pytest.param("$.lines[?(@.qty > 1)].sku", "B", id="filter-via-jsonpath-ng"),
        pytest.param("$..totalPages", "3", id="recursive-descent-via-jsonpath-ng"),
    ],
)
def test_extract_value(path: str, expected: Any) -> None:
    assert extract_value(path, ORDER) == expected


def test_plain_paths_skip_jsonpath_ng_and_complex_ones_use_it() -> None:
    plain = compile_jsonpath("$.lines[0].sku")
    assert plain.find.__qualname__.startswith("compile_jsonpath")  # the direct walk
    assert not plain.multi
    assert compile_jsonpath("$.lines[*].sku").multi
    assert compile_jsonpath("$.lines[?(@.qty > 1)].sku").find.__qualname__.startswith("_finder")


def test_fast_path_and_jsonpath_ng_agree() -> None:
    from jsonpath_ng.ext.parser import parse

    for path in ("$.object.status", "$.eans[1]", "$.lines[*].sku", "$.lines[1]", "$.paging"):
        assert find_all(path, ORDER) == [m.value for m in parse(path).find(ORDER)], path


def test_compiled_once() -> None:
    assert compile_jsonpath("$.compiled.once") is compile_jsonpath("$.compiled.once")


def test_dollar_alone_is_the_whole_document() -> None:
    assert find_first("$", [1, 2]) == [1, 2]
    assert find_all("$[*]", [1, 2]) == [1, 2]


@pytest.mark.parametrize("bad", ["$.a[", "$..", "a b", "$.(", "   ", ""])
def test_invalid_paths_say_how_to_write_them(bad: str) -> None:
    with pytest.raises(ValueError, match=r"Write it like `\$\.paging\.totalPages`"):
        validate_jsonpath(bad)


def test_jsonpath_type_validates_and_normalises_in_a_model() -> None:
    class Rule(BaseModel):
        source: JsonPath

    assert Rule(source="object.status").source == "$.object.status"
    with pytest.raises(ValidationError) as caught:
        Rule(source="$.a[")
    error = caught.value.errors()[0]
    assert error["loc"] == ("source",)
    assert "`$.a[` is not a valid JSONPath" in error["msg"]
