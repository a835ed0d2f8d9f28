"""Walk an API's pages: the settings of each paginator, and pure loops over an injected page getter.

Four paginators: page numbers (`PageNumberPaging`), record offset and limit (`OffsetPaging`), a cursor
each page gives to the next (`CursorPaging`) and a next-page URL from the body or the `Link` header
(`LinkPaging`). The loops know no HTTP: the caller passes `get_page(params) -> decoded body` (for links,
`get_page(url) -> (body, Link-header next URL, URL requested)`), so the stop rules, the loop guard, the
page cap and the warnings are tested with canned bodies. Once the first page gives the total number of
pages (page numbers only), the others are fetched `concurrency` at a time from a thread pool
(`get_page` must then be thread-safe, as an `httpx.Client` is); pages are still yielded in order, and at
most `2 x concurrency` of them are held at once, so memory stays bounded whatever the total. The other
paginators fetch one page after the other.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import ConfigDict, Field, model_validator

from tasks.api.jsonpath import JsonPath, JsonValue, compile_jsonpath, find_first, json_text
from tasks.errors import BadFileError, SourceRejectedError
from tasks.ui_schema import FormModel

GetPage = Callable[[dict[str, Any]], JsonValue]


def empty_is_ok_field() -> Any:
    """The `empty_is_ok` setting of every content path (a page's, a response's, a downloaded file's)."""
    return Field(
        default=False,
        title="Empty is OK",
        description="The API leaves the content path out of a response (a page) that has no records: "
        "such a response holds none. Off: a content path that matches nothing fails the call, naming the "
        "path and the keys the response has (an empty list at the path is always no records).",
    )


class PageNumberPaging(FormModel):
    """How a call asks for its pages by number, and where each page holds its records and totals."""

    model_config = ConfigDict(extra="forbid")

    page_number_param: str = Field(
        description="Query parameter that carries the page number, e.g. `pageNumber`."
    )
    page_size_param: str = Field(description="Query parameter that carries the page size, e.g. `pageSize`.")
    page_size: int = Field(ge=1, description="Number of records to ask for per page.")
    first_page: int = Field(
        default=0, ge=0, le=1, description="Number the API gives its first page (0 or 1)."
    )
    content_path: JsonPath = Field(description="JSONPath of the page's records, e.g. `$.elements`.")
    total_pages_path: JsonPath | None = Field(
        default=None,
        description="JSONPath of the total number of pages, e.g. `$.paging.totalPages`; empty: stop at the first empty page.",
    )
    total_records_path: JsonPath | None = Field(
        default=None,
        description="JSONPath of the total number of records, checked against the records received; "
        "empty: the `totalRecords` next to the total pages, when there is one.",
    )
    empty_is_ok: bool = empty_is_ok_field()
    max_pages: int = Field(default=10_000, ge=1, description="Stop with an error after this many pages.")
    concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Pages fetched at the same time once the first page gives the total number of pages "
        "(records keep their order). 1 fetches one page after the other; keep it small for fragile APIs.",
    )

    def params_for(self, number: int) -> dict[str, Any]:
        """Return the query parameters that ask for page `number`."""
        return {self.page_number_param: number, self.page_size_param: self.page_size}

    def records_total_path(self) -> str | None:
        """Return the path of the record total: the setting, or `totalRecords` beside `totalPages`."""
        if self.total_records_path:
            return self.total_records_path
        if self.total_pages_path and self.total_pages_path.endswith(".totalPages"):
            return self.total_pages_path.removesuffix("totalPages") + "totalRecords"
        return None

    def first_params(self) -> dict[str, Any]:
        """Return the query parameters of the first request."""
        return self.params_for(self.first_page)

    def request_key(self, params: dict[str, Any]) -> Any:
        """Return what tells this request's page apart: its page number."""
        return params.get(self.page_number_param)

    def ignored_hint(self) -> str:
        """Return what the API may ignore when pages repeat from the start, and the settings to check."""
        return (
            f"the page number (check the call's `paging.page_number_param` ({self.page_number_param!r}) "
            f"and `paging.first_page` ({self.first_page}))"
        )


class OffsetPaging(FormModel):
    """How a call asks for its pages by record offset and limit, and where each page holds its records."""

    model_config = ConfigDict(extra="forbid")

    offset_param: str = Field(
        description="Query parameter that carries the offset of the page's first record (0 first), e.g. `offset`."
    )
    limit_param: str = Field(description="Query parameter that carries the number of records, e.g. `limit`.")
    limit: int = Field(ge=1, description="Number of records to ask for per page.")
    content_path: JsonPath = Field(description="JSONPath of the page's records, e.g. `$.items`.")
    total_records_path: JsonPath | None = Field(
        default=None,
        description="JSONPath of the total number of records, e.g. `$.total`: reaching it ends the data. "
        "Empty: stop at the first empty page (or at a page that repeats the previous page's records).",
    )
    empty_is_ok: bool = empty_is_ok_field()
    max_pages: int = Field(default=10_000, ge=1, description="Stop with an error after this many pages.")

    # The walk's view of offset paging: page n starts at n x limit; pages are fetched one by one.
    @property
    def page_size(self) -> int:
        return self.limit

    @property
    def first_page(self) -> int:
        return 0

    @property
    def total_pages_path(self) -> str | None:
        return None

    @property
    def concurrency(self) -> int:
        return 1

    def params_for(self, number: int) -> dict[str, Any]:
        """Return the query parameters that ask for page `number` (0 first)."""
        return {self.offset_param: number * self.limit, self.limit_param: self.limit}

    def records_total_path(self) -> str | None:
        """Return the path of the record total, when the call gives one."""
        return self.total_records_path

    def first_params(self) -> dict[str, Any]:
        """Return the query parameters of the first request."""
        return self.params_for(0)

    def request_key(self, params: dict[str, Any]) -> Any:
        """Return what tells this request's page apart: its offset."""
        return params.get(self.offset_param)

    def ignored_hint(self) -> str:
        """Return what the API may ignore when pages repeat from the start, and the settings to check."""
        return f"the offset (check the call's `paging.offset_param` ({self.offset_param!r}))"


class CursorPaging(FormModel):
    """How a call follows a cursor each response gives to the next page, and where the records are."""

    model_config = ConfigDict(extra="forbid")

    cursor_path: JsonPath = Field(
        description="JSONPath of the next page's cursor in each response, e.g. `$.next_cursor`; a missing, "
        "null or empty cursor ends the data."
    )
    cursor_param: str = Field(
        description="Query parameter that carries the cursor, e.g. `cursor` (not sent with the first request)."
    )
    page_size_param: str | None = Field(
        default=None,
        description="Query parameter that carries the page size, e.g. `limit`. Empty: none sent.",
    )
    page_size: int | None = Field(
        default=None, ge=1, description="Number of records to ask for per page, sent in `page_size_param`."
    )
    content_path: JsonPath = Field(description="JSONPath of the page's records, e.g. `$.items`.")
    empty_is_ok: bool = empty_is_ok_field()
    max_pages: int = Field(default=10_000, ge=1, description="Stop with an error after this many pages.")

    @model_validator(mode="after")
    def _check_size(self) -> CursorPaging:
        if (self.page_size_param is None) != (self.page_size is None):
            raise ValueError("give both `page_size_param` and `page_size`, or neither.")
        return self

    def params_for(self, cursor: str | None) -> dict[str, Any]:
        """Return the query parameters that ask for the page after `cursor` (None: the first page)."""
        params: dict[str, Any] = {}
        if self.page_size_param is not None:
            params[self.page_size_param] = self.page_size
        if cursor is not None:
            params[self.cursor_param] = cursor
        return params

    def first_params(self) -> dict[str, Any]:
        """Return the query parameters of the first request."""
        return self.params_for(None)

    def request_key(self, params: dict[str, Any]) -> Any:
        """Return what tells this request's page apart: the cursor it sends."""
        return params.get(self.cursor_param)


class LinkPaging(FormModel):
    """How a call follows the next page's URL, from the body or the `Link` header, and where the records are."""

    model_config = ConfigDict(extra="forbid")

    next_url_path: JsonPath | None = Field(
        default=None,
        description="JSONPath of the next page's URL in each response, e.g. `$.links.next` (absolute, or "
        "relative to the page's URL). Empty: the `Link` header's `rel=\"next\"` URL. Missing, null or empty: "
        "the data ends. Followed only to the API's own host or the connection's `trusted_hosts`.",
    )
    content_path: JsonPath = Field(description="JSONPath of the page's records, e.g. `$.items`.")
    empty_is_ok: bool = empty_is_ok_field()
    max_pages: int = Field(default=10_000, ge=1, description="Stop with an error after this many pages.")

    def first_params(self) -> dict[str, Any]:
        """Return the query parameters of the first request: the call's own."""
        return {}


NumberedPaging = PageNumberPaging | OffsetPaging


@dataclass(frozen=True)
class Page:
    """One fetched page: its number, its records and the whole decoded body."""

    number: int
    records: list[JsonValue]
    body: JsonValue
    key: Any = None  # what the request sent to get this page: its page number, offset or cursor


def page_records(content_path: str, body: JsonValue) -> list[JsonValue]:
    """Return a page's records: the list the content path points at, or all the values it matches."""
    compiled = compile_jsonpath(content_path)
    matches = compiled.find(body)
    if not compiled.multi and len(matches) == 1:
        only = matches[0]
        return only if isinstance(only, list) else [] if only is None else [only]
    return matches


def content_records(
    content_path: str, body: JsonValue, *, empty_is_ok: bool = False, setting: str = "pattern"
) -> list[JsonValue]:
    """Return a page's records like `page_records`; raise BadFileError when the content path matches nothing.

    A path that matches nothing usually means a wrong path (it would import nothing, silently), unless the
    API leaves the key out of empty pages (`empty_is_ok`). A path with wildcards, whose matches may
    legitimately be none, and an empty body (204) are not checked. `setting` is where the call sets the
    path, for the message (`pattern`, or `pattern.format` for a downloaded file).
    """
    compiled = compile_jsonpath(content_path)
    if body is None or empty_is_ok or compiled.multi or compiled.find(body):
        return page_records(content_path, body)
    raise BadFileError(
        f"The content path `{content_path}` matches nothing in the response; {_shape(body)}. Check the "
        f"call's `{setting}.content_path` (names are case-sensitive); if the API leaves it out of responses "
        f"with no records, set the call's `{setting}.empty_is_ok`."
    )


def _shape(body: JsonValue) -> str:
    if isinstance(body, dict):
        keys = sorted(str(key) for key in body)
        listed = ", ".join(keys[:20]) + (f" and {len(keys) - 20} more" if len(keys) > 20 else "")
        return f"the page has the keys {listed}" if keys else "the page is an empty object"
    if isinstance(body, list):
        return f"the page is a list of {len(body):,} items (try `$`)"
    return f"the page is a single {type(body).__name__} value"


def same_records(records: list[JsonValue], previous: list[JsonValue] | None) -> bool:
    """Return whether a page's records equal the previous page's, by content (key order aside).

    Python's equality of decoded JSON: different pages differ in their first record, so the usual answer
    costs one comparison; only a real repeat is compared whole (the previous page is still in memory).
    """
    return previous is not None and len(records) == len(previous) and records == previous


def _count(path: str | None, body: JsonValue, setting: str) -> int | None:
    value = find_first(path, body) if path else None
    if value is None:
        return None
    number = _whole_number(value)
    if number is None:
        raise BadFileError(
            f"`{path}` gave {str(value)[:50]!r}, not a whole number of zero or more. Check the call's "
            f"`paging.{setting}` (it must point at a count, e.g. `$.paging.{_EXAMPLES[setting]}`), or leave "
            "it empty if the API gives no such count."
        )
    return number


_EXAMPLES = {"total_pages_path": "totalPages", "total_records_path": "totalRecords"}


def _whole_number(value: JsonValue) -> int | None:
    """Return a count as an int: a whole number >= 0, as a JSON number or digits; None for anything else.

    Refused: booleans, fractions, `Infinity`/`NaN` (which Python's JSON reader accepts) and negatives.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() and value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


@dataclass
class PageWalk:
    """Iterate once to fetch the pages lazily; afterwards `pages`, `records` and `warnings` are final."""

    get_page: GetPage
    paging: NumberedPaging
    params: dict[str, Any] = field(default_factory=dict)
    pages: int = 0
    records: int = 0
    total_pages: int | None = None
    total_records: int | None = None
    warnings: list[str] = field(default_factory=list)
    _last_records: list[JsonValue] | None = field(default=None, repr=False)
    _last_full: bool = field(default=False, repr=False)
    _full_before_last: bool = field(default=False, repr=False)

    def __iter__(self) -> Iterator[Page]:
        first = self._fetch(self.paging.first_page)
        if not first.records:
            self._check_empty_stop(first.number)
        elif self.total_pages is not None and self.paging.concurrency > 1:
            yield from self._concurrently(first)
        else:
            yield from self._one_by_one(first)
        self._check_record_total()

    def _one_by_one(self, page: Page) -> Iterator[Page]:
        while True:
            if self._repeats(page):
                return
            yield page
            if self._reached_total(page):
                return
            page = self._fetch(page.number + 1)
            if not page.records:
                self._check_empty_stop(page.number)
                return

    def _concurrently(self, first: Page) -> Iterator[Page]:
        total = self.total_pages or 0
        if total > self.paging.max_pages:
            raise SourceRejectedError(
                f"The API reports {total:,} pages, more than the call's `paging.max_pages` "
                f"({self.paging.max_pages:,}). Raise `paging.max_pages` if the API really has that many, "
                "or ask for bigger pages with `paging.page_size`."
            )
        self._repeats(first)
        yield first
        if self._reached_total(first):
            return
        numbers = iter(range(first.number + 1, first.number + total))
        pool = ThreadPoolExecutor(self.paging.concurrency, thread_name_prefix="page")
        window: deque[tuple[int, Future[JsonValue]]] = deque()

        def submit() -> None:
            number = next(numbers, None)
            if number is not None:
                window.append((number, pool.submit(self._get, number)))

        try:
            for _ in range(2 * self.paging.concurrency):  # in flight, plus fetched and waiting their turn
                submit()
            while window:
                number, future = window.popleft()
                page = self._take(number, future.result())
                submit()
                if not page.records:
                    self._check_empty_stop(number)
                    return
                if self._repeats(page):
                    return
                yield page
                if not window and self._reached_total(page):
                    return
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # an early stop drops the pages not yet needed

    def _fetch(self, number: int) -> Page:
        if self.pages >= self.paging.max_pages:
            raise SourceRejectedError(
                f"Stopped after {self.paging.max_pages:,} pages without reaching the last page. Raise the "
                "call's `paging.max_pages` if the API really has that many, or check `paging.total_pages_path`."
            )
        return self._take(number, self._get(number))

    def _get(self, number: int) -> JsonValue:
        return self.get_page({**self.params, **self.paging.params_for(number)})

    def _take(self, number: int, body: JsonValue) -> Page:
        self.pages += 1
        self.total_pages = _count(self.paging.total_pages_path, body, "total_pages_path")
        self.total_records = _count(self.paging.records_total_path(), body, "total_records_path")
        records = content_records(self.paging.content_path, body, empty_is_ok=self.paging.empty_is_ok)
        self.records += len(records)
        return Page(number, records, body, self.paging.request_key(self.paging.params_for(number)))

    def _repeats(self, page: Page) -> bool:
        """Return whether `page` repeats the previous page's records, which then ends the data.

        Many APIs answer every page past the end with their last page. A repeat after at least one full
        page before it is that end (noted in the warnings). A repeat of the first page is the loop guard:
        the API ignores the page number, or its data is one page it repeats; that fails the call.
        """
        if not same_records(page.records, self._last_records):
            self._full_before_last = self._full_before_last or self._last_full
            self._last_records, self._last_full = page.records, len(page.records) >= self.paging.page_size
            return False
        if not self._full_before_last:
            raise SourceRejectedError(
                f"Pages {page.number - 1} and {page.number} returned the same records: either the API "
                f"ignores {self.paging.ignored_hint()}, or its data is only one page that it repeats past the end (then set "
                "`paging.total_records_path` (or a page total) so the call knows where it ends)."
            )
        self.pages -= 1  # the repeat is not a page of data
        self.records -= len(page.records)
        note = (
            f"Page {page.number} repeated the records of page {page.number - 1}: taken as the end of the "
            "data (the API repeats its last page past the end)."
        )
        fetched = page.number - self.paging.first_page
        if self.total_pages is not None and fetched < self.total_pages:
            note += f" The API reported {self.total_pages:,} pages; {fetched:,} had data."
        self.warnings.append(note)
        return True

    def _reached_total(self, page: Page) -> bool:
        if self.total_pages is None:  # the record total, when known, ends the data as well
            return self.total_records is not None and self.records >= self.total_records
        if page.number - self.paging.first_page + 1 < self.total_pages:
            return False
        if len(page.records) >= self.paging.page_size and self._more_after(page.number):
            self.warnings.append(
                f"The API reported {self.total_pages:,} pages but the last one was full and more records "
                f"exist: `totalPages` is smaller than the data; stopped at page {page.number}."
            )
        return True

    def _more_after(self, number: int) -> bool:
        # A full last page is ambiguous: the record total settles it, else one probe of the next page.
        if self.total_records is not None:
            return self.total_records > self.records
        probe = page_records(self.paging.content_path, self._get(number + 1))
        return bool(probe) and not same_records(probe, self._last_records)  # a repeat of the last is no more

    def _check_empty_stop(self, number: int) -> None:
        fetched = number - self.paging.first_page
        if self.total_pages is not None and fetched < self.total_pages:
            self.warnings.append(
                f"The API reported {self.total_pages:,} pages but page {number} was empty: stopped after "
                f"{fetched:,} pages of data."
            )

    def _check_record_total(self) -> None:
        if self.total_records is not None and self.total_records != self.records:
            self.warnings.append(
                f"The API reported {self.total_records:,} records but {self.records:,} were received."
            )


def _cursor(path: str, body: JsonValue) -> str | None:
    value = find_first(path, body)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json_text(value)
    raise BadFileError(
        f"`{path}` gave {json_text(value)[:50]!r}, not a cursor (text or a number). Check the call's "
        "`pattern.cursor_path`."
    )


@dataclass
class ChainWalk(ABC):
    """Pages fetched one after the other, each naming the next (a cursor, a URL); iterate once.

    The data ends when a page names no next one. Loop guard: a page that names itself as the next, or
    repeats the previous page's records, fails the call. Afterwards `pages`, `records` and `warnings`
    are final. Subclasses say how a page is fetched and what its loop and cap errors say.
    """

    pages: int = field(default=0, kw_only=True)
    records: int = field(default=0, kw_only=True)
    total_pages: int | None = field(default=None, kw_only=True)
    total_records: int | None = field(default=None, kw_only=True)
    warnings: list[str] = field(default_factory=list, kw_only=True)

    def __iter__(self) -> Iterator[Page]:
        paging = self._paging()
        key: str | None = None  # what asks for the page: None for the call's first request
        previous: list[JsonValue] | None = None
        while True:
            if self.pages >= paging.max_pages:
                raise self._too_many(paging.max_pages)
            body, following, asked = self._fetch(key)
            number, self.pages = self.pages, self.pages + 1
            records = content_records(paging.content_path, body, empty_is_ok=paging.empty_is_ok)
            names_itself = following is not None and following == asked
            if names_itself or (records and same_records(records, previous)):
                raise self._loops(number, asked, names_itself=names_itself)
            self.records += len(records)
            yield Page(number, records, body, key)
            if following is None:
                return
            key, previous = following, records

    @abstractmethod
    def _paging(self) -> CursorPaging | LinkPaging: ...

    @abstractmethod
    def _fetch(self, key: str | None) -> tuple[JsonValue, str | None, str | None]:
        """Return the page's body, the key of the next page (None: the last) and what this page was asked as."""

    @abstractmethod
    def _loops(self, number: int, asked: str | None, *, names_itself: bool) -> SourceRejectedError: ...

    @abstractmethod
    def _too_many(self, max_pages: int) -> SourceRejectedError: ...


@dataclass
class CursorWalk(ChainWalk):
    """Follow the cursor each page gives (missing, null or empty: the last page)."""

    get_page: GetPage
    paging: CursorPaging
    params: dict[str, Any] = field(default_factory=dict)

    def _paging(self) -> CursorPaging:
        return self.paging

    def _fetch(self, key: str | None) -> tuple[JsonValue, str | None, str | None]:
        body = self.get_page({**self.params, **self.paging.params_for(key)})
        return body, _cursor(self.paging.cursor_path, body), key

    def _loops(self, number: int, asked: str | None, *, names_itself: bool) -> SourceRejectedError:
        return SourceRejectedError(
            f"Pages {number - 1} and {number} returned the same {'cursor' if names_itself else 'records'} "
            f"(cursor {asked!r} asked for page {number}): the API seems to ignore the cursor. Check the "
            f"call's `pattern.cursor_param` ({self.paging.cursor_param!r}) and `pattern.cursor_path` "
            f"({self.paging.cursor_path!r})."
        )

    def _too_many(self, max_pages: int) -> SourceRejectedError:
        return SourceRejectedError(
            f"Stopped after {max_pages:,} pages and the API still gave a next cursor. Raise the call's "
            "`pattern.max_pages` if the API really has that many, or check `pattern.cursor_path` "
            f"({self.paging.cursor_path!r})."
        )


Walk = PageWalk | CursorWalk


def walk_pages(
    get_page: GetPage, paging: NumberedPaging | CursorPaging, params: dict[str, Any] | None = None
) -> Walk:
    """Return a lazy walk over the pages; `params` are the call's other query parameters."""
    if isinstance(paging, CursorPaging):
        return CursorWalk(get_page, paging, dict(params or {}))
    return PageWalk(get_page, paging, dict(params or {}))


# get_link(url) -> (decoded body, the `Link` header's next URL or None, the URL actually requested);
# url None asks for the call's first page.
GetLinkPage = Callable[[str | None], tuple[JsonValue, str | None, str]]


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"  # no query, no user info


@dataclass
class LinkWalk(ChainWalk):
    """Follow each page's next URL, resolved against the page's own URL.

    A next URL is followed only when `allowed(url)` (the API's host or the connection's trusted hosts);
    anything else fails the call, naming the host.
    """

    get_page: GetLinkPage
    paging: LinkPaging
    allowed: Callable[[str], bool]

    def _paging(self) -> LinkPaging:
        return self.paging

    def _fetch(self, key: str | None) -> tuple[JsonValue, str | None, str | None]:
        body, header_next, requested = self.get_page(key)
        return body, self._next(body, header_next, requested), requested

    def _loops(self, number: int, asked: str | None, *, names_itself: bool) -> SourceRejectedError:
        looped = "names itself as the next page" if names_itself else "repeats the page before"
        return SourceRejectedError(
            f"Page {number} ({_where(asked or '')}) {looped}: the API seems to loop. Check the call's "
            f"`pattern.next_url_path` ({self.paging.next_url_path or 'empty: the Link header'!s})."
        )

    def _too_many(self, max_pages: int) -> SourceRejectedError:
        return SourceRejectedError(
            f"Stopped after {max_pages:,} pages and the API still gave a next page. Raise the call's "
            "`pattern.max_pages` if the API really has that many."
        )

    def _next(self, body: JsonValue, header_next: str | None, requested: str) -> str | None:
        path = self.paging.next_url_path
        value = find_first(path, body) if path else header_next
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise BadFileError(
                f"`{path}` gave {json_text(value)[:50]!r}, not a URL. Check the call's `pattern.next_url_path`."
            )
        following = urljoin(requested, value.strip())
        parts = urlsplit(following)
        if parts.scheme not in ("http", "https") or not self.allowed(following):
            raise SourceRejectedError(
                f"The next page's URL ({_where(following)}) is on host {parts.hostname or '?'!r}, neither the "
                "API's own host nor one of the connection's `trusted_hosts` (or not http/https): not followed. "
                "If the API really serves its pages there, add the host to the block's `trusted_hosts`."
            )
        return following
