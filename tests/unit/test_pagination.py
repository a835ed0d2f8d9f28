"""Page-number paging over canned bodies: the seed's example, stop rules, loop guard, cap, warnings."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from pydantic import ValidationError

from tasks.api.paging import (
    CursorPaging,
    LinkPaging,
    LinkWalk,
    OffsetPaging,
    PageNumberPaging,
    content_records,
    page_records,
    same_records,
    walk_pages,
)
from tasks.errors import BadFileError, SourceRejectedError

# The seed's example: pageNumber / pageSize / $.paging.totalPages / $.elements, first page 1, size 1.
SEED = PageNumberPaging(
    page_number_param="pageNumber",
    page_size_param="pageSize",
    page_size=1,
    first_page=1,
    total_pages_path="$.paging.totalPages",
    content_path="$.elements",
)


class FakeApi:
    """Serves `records` in pages like the seed's API and remembers every request's parameters."""

    def __init__(
        self,
        records: list[Any],
        *,
        total_pages: int | None = None,
        total_records: int | None = None,
        first_page: int = 1,
        with_totals: bool = True,
    ) -> None:
        self.records = records
        self.total_pages = total_pages
        self.total_records = total_records
        self.first_page = first_page
        self.with_totals = with_totals
        self.requests: list[dict[str, Any]] = []

    def __call__(self, params: dict[str, Any]) -> Any:
        self.requests.append(params)
        size = params["pageSize"]
        start = (params["pageNumber"] - self.first_page) * size
        body: dict[str, Any] = {"elements": self.records[start : start + size]}
        if self.with_totals:
            pages = -(-len(self.records) // size)
            body["paging"] = {
                "pageNumber": params["pageNumber"],
                "pageSize": size,
                "totalPages": pages if self.total_pages is None else self.total_pages,
                "totalRecords": len(self.records) if self.total_records is None else self.total_records,
            }
        return body


def product(number: int) -> dict[str, Any]:
    return {"productId": f"{number:06d}", "name": f"product {number}", "eans": [str(number)]}


def test_seed_example_2399_one_record_pages_in_order() -> None:
    api = FakeApi([product(n) for n in range(2399)])
    walk = walk_pages(api, SEED, {"lang": "fr"})
    records = [record for page in walk for record in page.records]
    assert [r["productId"] for r in records] == [f"{n:06d}" for n in range(2399)]
    assert walk.pages == 2399
    assert walk.records == 2399
    assert walk.total_pages == 2399
    assert walk.total_records == 2399
    assert walk.warnings == []
    assert api.requests[0] == {"lang": "fr", "pageNumber": 1, "pageSize": 1}
    assert sorted(p["pageNumber"] for p in api.requests) == list(range(1, 2400))  # each page once


def test_pages_are_fetched_lazily() -> None:
    api = FakeApi([product(n) for n in range(10)])
    pages = iter(walk_pages(api, SEED))
    first = next(pages)
    assert first.number == 1
    assert first.body["paging"]["totalPages"] == 10
    assert len(api.requests) == 1


def test_without_a_total_it_stops_at_the_first_empty_page() -> None:
    paging = SEED.model_copy(update={"total_pages_path": None, "page_size": 2, "first_page": 0})
    api = FakeApi([product(n) for n in range(5)], first_page=0, with_totals=False)
    walk = walk_pages(api, paging)
    assert [len(page.records) for page in walk] == [2, 2, 1]
    assert [p["pageNumber"] for p in api.requests] == [0, 1, 2, 3]
    assert walk.warnings == []


def test_first_page_zero_with_total() -> None:
    paging = SEED.model_copy(update={"first_page": 0, "page_size": 2})
    api = FakeApi([product(n) for n in range(4)], first_page=0)
    assert [page.number for page in walk_pages(api, paging)] == [0, 1]
    assert len(api.requests) == 2


def test_no_records_at_all_is_one_request_and_no_warning() -> None:
    api = FakeApi([])
    walk = walk_pages(api, SEED)
    assert list(walk) == []
    assert len(api.requests) == 1
    assert walk.warnings == []


def test_loop_guard_names_the_setting() -> None:
    def ignores_page_number(params: dict[str, Any]) -> Any:
        return {"elements": [product(1)]}  # no total: a naive loop would never end

    paging = SEED.model_copy(update={"total_pages_path": None})
    with pytest.raises(
        SourceRejectedError,
        match=r"Pages 1 and 2 returned the same records.*`paging.page_number_param` \('pageNumber'\)",
    ):
        list(walk_pages(ignores_page_number, paging))


def test_max_pages_cap() -> None:
    paging = SEED.model_copy(update={"total_pages_path": None, "max_pages": 5})
    api = FakeApi([product(n) for n in range(100)], with_totals=False)
    walk = walk_pages(api, paging)
    with pytest.raises(
        SourceRejectedError, match=r"Stopped after 5 pages .* Raise the call's `paging.max_pages`"
    ):
        list(walk)
    assert len(api.requests) == 5


def test_warns_when_total_records_differs() -> None:
    paging = SEED.model_copy(update={"page_size": 2})
    walk = walk_pages(FakeApi([product(n) for n in range(3)], total_records=4), paging)
    assert [len(page.records) for page in walk] == [2, 1]
    assert walk.warnings == ["The API reported 4 records but 3 were received."]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_warns_when_total_pages_is_larger_than_the_data(concurrency: int) -> None:
    api = FakeApi([product(n) for n in range(3)], total_pages=5)
    walk = walk_pages(api, SEED.model_copy(update={"concurrency": concurrency}))
    assert len(list(walk)) == 3
    assert len(api.requests) in ({4} if concurrency == 1 else {4, 5})  # concurrently page 5 may be asked too
    assert walk.warnings == ["The API reported 5 pages but page 4 was empty: stopped after 3 pages of data."]


def test_warns_when_total_pages_is_smaller_than_the_data() -> None:
    walk = walk_pages(FakeApi([product(n) for n in range(5)], total_pages=2), SEED)
    assert len(list(walk)) == 2
    assert walk.warnings == [
        "The API reported 2 pages but the last one was full and more records exist: `totalPages` is "
        "smaller than the data; stopped at page 2.",
        "The API reported 5 records but 2 were received.",
    ]


def test_without_a_record_total_a_full_last_page_is_checked_with_one_probe() -> None:
    paging = SEED.model_copy(update={"total_records_path": "$.nothing"})
    api = FakeApi([product(n) for n in range(5)], total_pages=2)
    walk = walk_pages(api, paging)
    assert len(list(walk)) == 2
    assert [p["pageNumber"] for p in api.requests] == [1, 2, 3]
    assert "`totalPages` is smaller than the data" in walk.warnings[0]
    exact = FakeApi([product(n) for n in range(2)])
    assert walk_pages(exact, paging).warnings == []
    quiet = walk_pages(exact, paging)
    assert len(list(quiet)) == 2
    assert quiet.warnings == []


def test_total_records_path_is_found_beside_total_pages_or_set() -> None:
    assert SEED.records_total_path() == "$.paging.totalRecords"
    custom = SEED.model_copy(update={"total_records_path": "$.meta.count"})
    assert custom.records_total_path() == "$.meta.count"
    assert SEED.model_copy(update={"total_pages_path": "$.pages"}).records_total_path() is None


def test_a_total_that_is_not_a_number_is_a_bad_file() -> None:
    with pytest.raises(BadFileError, match=r"`\$.paging.totalPages` gave 'many'.*`paging.total_pages_path`"):
        list(walk_pages(lambda params: {"paging": {"totalPages": "many"}, "elements": [1]}, SEED))


@pytest.mark.parametrize(
    ("path", "body", "records"),
    [
        pytest.param("$.elements", {"elements": [1, 2]}, [1, 2], id="list"),
        pytest.param("$.elements[*]", {"elements": [1, 2]}, [1, 2], id="wildcard"),
        pytest.param("$.elements", {"elements": None}, [], id="null"),
        pytest.param("$.elements", {}, [], id="missing"),
        pytest.param("$.element", {"element": {"id": 1}}, [{"id": 1}], id="single-object"),
        pytest.param("$", [1, 2], [1, 2], id="root-list"),
    ],
)
def test_page_records(path: str, body: Any, records: list[Any]) -> None:
    assert page_records(path, body) == records


def test_settings_validate_paths_and_first_page() -> None:
    assert SEED.model_copy().content_path == "$.elements"
    assert (
        PageNumberPaging.model_validate(
            {"page_number_param": "p", "page_size_param": "s", "page_size": 10, "content_path": "elements"}
        ).content_path
        == "$.elements"
    )
    with pytest.raises(ValidationError, match="first_page"):
        PageNumberPaging(
            page_number_param="p", page_size_param="s", page_size=1, first_page=2, content_path="$.a"
        )
    with pytest.raises(ValidationError, match="is not a valid JSONPath"):
        PageNumberPaging(page_number_param="p", page_size_param="s", page_size=1, content_path="$.a[")


class SlowApi(FakeApi):
    """A FakeApi whose pages take `delay` seconds and answer out of order, tracking how many overlap."""

    def __init__(self, records: list[Any], delay: float) -> None:
        super().__init__(records)
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, params: dict[str, Any]) -> Any:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        # Even pages are slower, so answers come back out of order.
        time.sleep(self.delay * (2 if params["pageNumber"] % 2 == 0 else 1))
        with self.lock:
            self.in_flight -= 1
        return super().__call__(params)


def test_concurrent_pages_keep_their_order_and_bound_what_is_in_flight() -> None:
    api = SlowApi([product(n) for n in range(60)], delay=0.01)
    paging = SEED.model_copy(update={"page_size": 2, "concurrency": 4})
    started = time.monotonic()
    walk = walk_pages(api, paging)
    records = [record for page in walk for record in page.records]
    concurrent = time.monotonic() - started
    assert [r["productId"] for r in records] == [f"{n:06d}" for n in range(60)]
    assert (walk.pages, walk.records, walk.warnings) == (30, 60, [])
    assert 2 <= api.most_in_flight <= 4

    sequential_api = SlowApi([product(n) for n in range(60)], delay=0.01)
    started = time.monotonic()
    list(walk_pages(sequential_api, paging.model_copy(update={"concurrency": 1})))
    assert sequential_api.most_in_flight == 1
    assert time.monotonic() - started > 2 * concurrent


def test_concurrent_pages_are_fetched_a_window_at_a_time() -> None:
    api = FakeApi([product(n) for n in range(100)])
    pages = iter(walk_pages(api, SEED.model_copy(update={"concurrency": 3})))
    next(pages)
    next(pages)
    time.sleep(0.05)
    assert len(api.requests) <= 1 + 2 * 3 + 1  # the first page, a window of 6, one more on taking page 2
    pages.close()  # stopping early cancels what was not asked yet


def test_concurrent_loop_guard_and_cap() -> None:
    def same_page(params: dict[str, Any]) -> Any:
        return {"paging": {"totalPages": 50}, "elements": [product(1)]}

    with pytest.raises(SourceRejectedError, match="Pages 1 and 2 returned the same records"):
        list(walk_pages(same_page, SEED))
    capped = SEED.model_copy(update={"max_pages": 10})
    with pytest.raises(
        SourceRejectedError, match=r"reports 50 pages, more than the call's `paging.max_pages`"
    ):
        list(walk_pages(same_page, capped))


# --- issue 15 -----------------------------------------------------------------------------------------


def test_a_content_path_that_matches_nothing_names_the_path_and_the_keys() -> None:
    with pytest.raises(BadFileError, match=r"`\$\.item` matches nothing.*keys elements, paging.*empty_is_ok"):
        content_records("$.item", {"paging": {}, "elements": []})
    with pytest.raises(BadFileError, match=r"a list of 2 items"):
        content_records("$.item", [1, 2])
    assert content_records("$.item", {"paging": {}}, empty_is_ok=True) == []
    assert content_records("$.elements", {"elements": []}) == []
    assert content_records("$.elements[*]", {"elements": []}) == []  # wildcards may match nothing


def test_same_records_compares_content_not_key_order() -> None:
    assert same_records([{"a": 1, "b": 2}], [{"b": 2, "a": 1}])
    assert not same_records([{"a": 1}], [{"a": 2}])
    assert not same_records([{"id": 1, "v": "x"}], [{"id": 1, "v": "y"}])  # same first id
    assert not same_records([{"a": 1}], [{"a": 1}, {"a": 2}])
    assert not same_records([{"a": 1}], None)  # the first page repeats nothing


def test_a_page_repeated_past_the_end_ends_the_data_with_a_note() -> None:
    records = [product(n) for n in range(5)]

    def repeats_last(params: dict[str, Any]) -> Any:
        start = (min(params["pageNumber"], 3) - 1) * 2
        return {"elements": records[start : start + 2]}

    paging = SEED.model_copy(update={"total_pages_path": None, "page_size": 2})
    walk = walk_pages(repeats_last, paging)
    assert [r for page in walk for r in page.records] == records
    assert walk.pages == 3
    assert walk.records == 5
    assert walk.warnings == [
        "Page 4 repeated the records of page 3: taken as the end of the data (the API repeats its last "
        "page past the end)."
    ]


@pytest.mark.parametrize("total", ["Infinity", "NaN", 2.5, -1, True, "x"])
def test_totals_that_are_not_whole_numbers_are_refused(total: Any) -> None:
    def api(params: dict[str, Any]) -> Any:
        return {"elements": [product(1)], "paging": {"totalPages": total}}

    with pytest.raises(BadFileError, match=r"not a whole number of zero or more"):
        list(walk_pages(api, SEED))


def test_whole_totals_written_as_floats_or_digits_are_accepted() -> None:
    for total in (1.0, "1", 1):
        walk = walk_pages(
            lambda params, t=total: {"elements": [product(1)], "paging": {"totalPages": t}}, SEED
        )
        assert len(list(walk)) == 1


# --- offset and cursor paging -------------------------------------------------------------------------

OFFSET = OffsetPaging(offset_param="offset", limit_param="limit", limit=2, content_path="$.items")
CURSOR = CursorPaging(cursor_path="$.next", cursor_param="after", content_path="$.items")


def test_offset_paging_asks_by_offset_and_stops_at_the_record_total() -> None:
    records = [product(n) for n in range(5)]
    requests: list[dict[str, Any]] = []

    def api(params: dict[str, Any]) -> Any:
        requests.append(params)
        return {"items": records[params["offset"] : params["offset"] + params["limit"]], "total": 5}

    walk = walk_pages(api, OFFSET.model_copy(update={"total_records_path": "$.total"}), {"q": "x"})
    assert [r for page in walk for r in page.records] == records
    assert requests == [{"q": "x", "offset": o, "limit": 2} for o in (0, 2, 4)]
    assert [page.key for page in walk_pages(api, OFFSET)] == [0, 2, 4]  # no total: the empty page ends
    assert walk.warnings == []


def test_offset_paging_loop_guard_names_the_offset() -> None:
    with pytest.raises(SourceRejectedError, match=r"ignores the offset .*`paging.offset_param` \('offset'\)"):
        list(walk_pages(lambda params: {"items": [product(1), product(2)]}, OFFSET))


def test_cursor_paging_follows_the_cursor_and_stops_without_one() -> None:
    records = [product(n) for n in range(5)]
    requests: list[dict[str, Any]] = []

    def api(params: dict[str, Any]) -> Any:
        requests.append(params)
        start = int(params.get("after", 0))
        return {"items": records[start : start + 2], "next": start + 2 if start + 2 < 5 else None}

    walk = walk_pages(api, CURSOR.model_copy(update={"page_size_param": "limit", "page_size": 2}))
    assert [r for page in walk for r in page.records] == records
    assert [params.get("after") for params in requests] == [None, "2", "4"]
    assert {params["limit"] for params in requests} == {2}
    assert walk.pages == 3


def test_cursor_paging_guards_and_caps() -> None:
    with pytest.raises(SourceRejectedError, match=r"same cursor .*`pattern.cursor_param` \('after'\)"):
        list(walk_pages(lambda params: {"items": [], "next": "c"}, CURSOR))
    counter = iter(range(100))
    with pytest.raises(SourceRejectedError, match=r"Stopped after 3 pages"):
        list(
            walk_pages(
                lambda params: {"items": [next(counter)], "next": str(next(counter))},
                CURSOR.model_copy(update={"max_pages": 3}),
            )
        )
    with pytest.raises(BadFileError, match=r"not a cursor"):
        list(walk_pages(lambda params: {"items": [], "next": {"a": 1}}, CURSOR))
    with pytest.raises(ValidationError, match=r"page_size_param"):
        CursorPaging(cursor_path="$.n", cursor_param="c", content_path="$.i", page_size=5)


# --- next-page links --------------------------------------------------------------------------------


def test_link_paging_resolves_relative_urls_and_refuses_other_hosts() -> None:
    pages = {
        None: ({"items": [1, 2], "next": "?page=2"}, "https://api.test/items"),
        "https://api.test/items?page=2": ({"items": [3], "next": "https://api.test/items?page=3"}, ""),
        "https://api.test/items?page=3": ({"items": [4], "next": None}, ""),
    }
    asked: list[str | None] = []

    def get(url: str | None) -> tuple[Any, str | None, str]:
        asked.append(url)
        body, requested = pages[url]
        return body, None, requested or str(url)

    paging = LinkPaging(next_url_path="$.next", content_path="$.items")
    walk = LinkWalk(get, paging, lambda url: url.startswith("https://api.test/"))
    assert [r for page in walk for r in page.records] == [1, 2, 3, 4]
    assert asked == [None, "https://api.test/items?page=2", "https://api.test/items?page=3"]

    def foreign(url: str | None) -> tuple[Any, str | None, str]:
        return {"items": [1]}, "https://evil.test/steal?token=s3cret", "https://api.test/items"

    with pytest.raises(SourceRejectedError, match=r"on host 'evil.test'") as failure:
        list(LinkWalk(foreign, LinkPaging(content_path="$.items"), lambda url: "api.test" in url))
    assert "s3cret" not in str(failure.value)

    def loops(url: str | None) -> tuple[Any, str | None, str]:
        return {"items": [1]}, "https://api.test/items", "https://api.test/items"

    with pytest.raises(SourceRejectedError, match=r"names itself as the next page"):
        list(LinkWalk(loops, LinkPaging(content_path="$.items"), lambda url: True))
