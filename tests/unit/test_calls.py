"""API call templates, variables, durations and job validation: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from flows.import_json_from_api import ApiImportJob
from tasks.api.calls import (
    ApiCall,
    CallContext,
    CsvFile,
    DownloadPattern,
    PagingPattern,
    check_chain,
    parse_duration,
    parse_value,
    path_variables,
    records_of,
    render_path,
    resolve_body,
    resolve_value,
    since_value,
)

LAST = datetime(2026, 3, 10, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1H", timedelta(hours=1)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("PT90S", timedelta(seconds=90)),
        ("P2W", timedelta(weeks=2)),
        ("pt15m", timedelta(minutes=15)),
    ],
)
def test_iso_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "1H", "P1M", "P1Y", "PT1H30", "P1DT"])
def test_bad_durations_say_how_to_write_them(text: str) -> None:
    with pytest.raises(ValueError, match="PT1H"):
        parse_duration(text)


def test_since_is_last_start_minus_duration_or_initial_since() -> None:
    assert since_value("PT1H", LAST, datetime(2020, 1, 1, tzinfo=UTC)) == "2026-03-10T11:30:15Z"
    assert since_value("P1DT2H30M", LAST, datetime(2020, 1, 1, tzinfo=UTC)) == "2026-03-09T10:00:15Z"
    assert since_value("PT1H", None, datetime(2020, 1, 1, tzinfo=UTC)) == "2020-01-01T00:00:00Z"


def test_path_variables_are_parsed_in_order() -> None:
    assert path_variables("shops/{shop}/items/{id}/{shop}") == ["shop", "id"]
    assert path_variables("items") == []


def test_path_values_are_percent_encoded() -> None:
    assert render_path("items/{id}/x", {"id": "a b/c?d"}) == "items/a%20b%2Fc%3Fd/x"
    assert render_path("items/{n}", {"n": 42}) == "items/42"


def test_value_kinds() -> None:
    assert parse_value("products").kind == "constant"
    assert parse_value("$.invocationId").kind == "response"
    assert parse_value("${invocationId}").variables == ("invocationId",)
    assert parse_value("lastJobExecutionMinusDuration(PT1H)").kind == "since"
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_value("lastJobExecutionMinusDuration(one hour)")


def test_values_resolve_against_the_previous_response_variables_and_run_history() -> None:
    context = CallContext(
        previous={"invocationId": "799b", "n": 3},
        has_previous=True,
        variables={"id": "x1", "n": 7},
        last_start=LAST,
    )
    assert resolve_value("$.invocationId", context, where="w") == "799b"
    assert resolve_value("$.n", context, where="w") == 3  # keeps its JSON type
    assert resolve_value("${id}", context, where="w") == "x1"
    assert resolve_value("files/${id}-${n}.csv", context, where="w") == "files/x1-7.csv"
    assert resolve_value("lastJobExecutionMinusDuration(PT30M)", context, where="w") == "2026-03-10T12:00:15Z"
    assert resolve_value("plain", context, where="w") == "plain"
    assert resolve_body({"a": ["$.n", {"b": "${id}"}], "c": 1}, context, where="body") == {
        "a": [3, {"b": "x1"}],
        "c": 1,
    }
    with pytest.raises(ValueError, match="first call"):
        resolve_value("$.x", CallContext(), where="w")
    with pytest.raises(ValueError, match=r"w: variable `\$\{nope\}` was not captured"):
        resolve_value("${nope}", context, where="w")


def test_a_whole_captured_variable_keeps_its_json_type() -> None:
    context = CallContext(variables={"n": 7, "ids": [1, 2], "obj": {"a": None}})
    assert resolve_value("${n}", context, where="w") == 7
    assert resolve_value(" ${ids} ", context, where="w") == [1, 2]
    assert resolve_body({"x": "${obj}", "y": "n=${n}"}, context, where="body") == {
        "x": {"a": None},
        "y": "n=7",
    }


def test_double_braces_are_no_variable_syntax() -> None:
    # `{{name}}` was the syntax until `prefect deploy` was seen templating it away: a job refuses it
    # (tests/unit/test_prefect_placeholders.py); to a lone call it is plain text.
    assert parse_value("{{invocationId}}").kind == "constant"
    assert parse_value("$ {x}").kind == "constant"


def test_a_captured_variable_in_the_path_itself_says_where_it_goes() -> None:
    with pytest.raises(ValidationError) as caught:
        ApiCall(name="status", path="offers/invocations/${invocationId}")
    assert (
        "call 'status': the path 'offers/invocations/${invocationId}' holds `${invocationId}`; write "
        "`{invocationId}` in the path and `path_variables: {invocationId: ${invocationId}}`."
    ) in str(caught.value)


def test_a_download_url_may_come_from_a_captured_variable() -> None:
    call = _call("dl", pattern={"kind": "download", "url_from": "${fileUrl}", "format": {"kind": "json"}})
    assert call.variables_used() == ["fileUrl"]
    assert not call.reads_previous()


def test_unknown_path_variable_names_it_and_the_call() -> None:
    with pytest.raises(ValidationError, match=r"call 'status'.*`\{invocationId\}`"):
        ApiCall(name="status", path="invocations/{invocationId}")
    with pytest.raises(ValidationError, match=r"'extra' is not used"):
        ApiCall(name="status", path="x", path_variables={"extra": "1"})


def _call(name: str, **fields: Any) -> ApiCall:
    return ApiCall.model_validate({"name": name, **fields})


def test_a_variable_must_be_captured_by_an_earlier_call() -> None:
    first = _call("generate", method="POST", path="generate", capture={"invocationId": "$.invocationId"})
    second = _call("status", path="s/{id}", path_variables={"id": "${invocationId}"})
    check_chain([first, second])
    with pytest.raises(ValueError, match=r"call 'status' uses the variable `\$\{invocationId\}`"):
        check_chain([second, first])
    with pytest.raises(ValueError, match=r"`\$\{other\}`.*captured before it: invocationId"):
        check_chain([first, _call("x", query={"q": "${other}"})])


def test_the_first_call_cannot_read_a_previous_response() -> None:
    with pytest.raises(ValueError, match="first call"):
        check_chain([_call("a", query={"q": "$.id"})])


def test_patterns_are_a_discriminated_union() -> None:
    paging = _call(
        "list",
        path="products",
        pattern={
            "kind": "paging",
            "page_number_param": "pageNumber",
            "page_size_param": "pageSize",
            "page_size": 1,
            "first_page": 1,
            "total_pages_path": "$.paging.totalPages",
            "content_path": "$.elements",
        },
    )
    assert paging.pattern.kind == "paging"
    retry = _call("poll", pattern={"kind": "retry", "condition_path": "statusFile", "value": "AVAILABLE"})
    assert retry.pattern.condition_path == "$.statusFile"  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="retries"):
        _call("poll", pattern={"kind": "retry", "condition_path": "s", "value": "A", "retries": 3})
    with pytest.raises(ValidationError, match="url_from"):
        _call("dl", pattern={"kind": "download", "url_from": "$..[", "format": {"kind": "json"}})


def test_job_validates_mapping_and_csv_download_position() -> None:
    base: dict[str, Any] = {"name": "j", "connection": "c", "entity": "products"}
    calls = [{"name": "list", "path": "products"}]
    job = ApiImportJob.model_validate(
        base | {"calls": calls, "mapping": {"productId": "productExternalId", "$.name": "productNames"}}
    )
    assert job.mapping == {"$.productId": "productExternalId", "$.name": "productNames"}
    with pytest.raises(ValidationError, match="valid fields"):
        ApiImportJob.model_validate(
            base | {"calls": calls, "mapping": {"$.id": "productExternalId", "$.x": "nope"}}
        )
    with pytest.raises(ValidationError, match="key"):
        ApiImportJob.model_validate(base | {"calls": calls, "mapping": {"$.x": "productNames"}})
    download = {
        "name": "dl",
        "pattern": {
            "kind": "download",
            "url_from": "$.urlFile",
            "format": {"kind": "csv", "csv": {"delimiter": ";"}},
        },
    }
    with pytest.raises(ValidationError, match="must be the last call"):
        ApiImportJob.model_validate(
            base
            | {
                "calls": [calls[0], download, calls[0] | {"name": "x"}],
                "mapping": {"$.id": "productExternalId"},
            }
        )
    ok = ApiImportJob.model_validate(base | {"calls": [calls[0], download]})
    assert ok.mapping is None


def test_records_of_a_response() -> None:
    assert records_of({"elements": [{"a": 1}, {"a": 2}]}, "$.elements") == [{"a": 1}, {"a": 2}]
    assert records_of([{"a": 1}], None) == [{"a": 1}]
    assert records_of({"a": 1}, None) == [{"a": 1}]
    assert records_of({"elements": []}, "$.elements") == []
    assert records_of({"other": 1}, "$.elements") == []


def test_child_records_are_validated_with_the_job() -> None:
    base: dict[str, Any] = {
        "name": "orders-api",
        "connection": "api",
        "entity": "orders",
        "calls": [{"name": "orders", "path": "orders"}],
        "mapping": {"$.id": "orderExternalId"},
    }
    children = {"path": "orderLines", "mapping": {"lineId": "orderLineExternalId"}}
    job = ApiImportJob.model_validate(base | {"children": children})
    assert job.children is not None
    assert (job.children.path, job.children.mapping) == ("$.orderLines", {"$.lineId": "orderLineExternalId"})
    assert job.record_mapper().targets == ["orderExternalId", "orderLineExternalId"]
    with pytest.raises(ValidationError, match=r"`children`: suppliers has no child table"):
        ApiImportJob.model_validate(
            base | {"entity": "suppliers", "mapping": {"$.id": "supplierExternalId"}, "children": children}
        )
    with pytest.raises(ValidationError, match=r"column '\$.orderLines\[\*\].x' is mapped to `nope`"):
        ApiImportJob.model_validate(base | {"children": {"path": "$.orderLines", "mapping": {"$.x": "nope"}}})
    with pytest.raises(ValidationError, match="is not a valid JSONPath"):
        ApiImportJob.model_validate(
            base | {"children": {"path": "$.lines[", "mapping": {"$.x": "orderLineExternalId"}}}
        )


def test_paging_concurrency_and_export_settings() -> None:
    paging = {
        "kind": "paging",
        "page_number_param": "p",
        "page_size_param": "s",
        "page_size": 10,
        "content_path": "$.e",
    }
    call = _call("list", pattern=paging)
    assert isinstance(call.pattern, PagingPattern)
    assert (call.pattern.concurrency, call.pattern.export_pages_to) == (4, None)
    assert (
        _call("list", pattern=paging | {"concurrency": 1, "export_pages_to": "s3://b/x"}).pattern.kind
        == "paging"
    )
    for wrong in (0, 33):
        with pytest.raises(ValidationError, match="concurrency"):
            _call("list", pattern=paging | {"concurrency": wrong})


@pytest.mark.parametrize("empty", [None, {}], ids=["null", "empty-dict"])
def test_empty_mappings_of_an_api_job_mean_none(empty: dict[str, str] | None) -> None:
    # What the run form's JSON editors send for an empty mapping: null, or {} once emptied.
    download = {
        "name": "dl",
        "pattern": {
            "kind": "download",
            "url_from": "$.urlFile",
            "format": {"kind": "csv", "csv": {"delimiter": ";"}, "mapping": empty},
        },
    }
    base: dict[str, Any] = {"name": "j", "connection": "c", "entity": "offers", "mapping": empty}
    job = ApiImportJob.model_validate(base | {"calls": [{"name": "gen", "path": "g"}, download]})
    assert job.mapping is None
    assert isinstance(job.calls[-1].pattern, DownloadPattern)
    assert isinstance(job.calls[-1].pattern.format, CsvFile)
    assert job.calls[-1].pattern.format.mapping is None  # the CSV's standard headers
    with pytest.raises(ValidationError, match="`mapping`: map at least the entity's key"):
        ApiImportJob.model_validate(base | {"calls": [{"name": "list", "path": "offers"}]})
