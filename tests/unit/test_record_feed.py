"""The feed between a paging call and the load running beside it: order, bounds, and failures both ways."""

from __future__ import annotations

import threading
import time

import pytest

from tasks.api.feed import RecordFeed
from tasks.api.jsonpath import JsonValue
from tasks.errors import CallFailedError, FeedAbandonedError


def _produce(feed: RecordFeed, pages: int, per_page: int, errors: list[BaseException]) -> None:
    try:
        for page in range(pages):
            feed.put([{"page": page, "n": n} for n in range(per_page)])
        feed.finish()
    except BaseException as exc:  # collected for the test's assertions
        errors.append(exc)


def test_records_arrive_in_page_order_through_a_small_queue() -> None:
    feed = RecordFeed(max_pages=2)
    errors: list[BaseException] = []
    producer = threading.Thread(target=_produce, args=(feed, 50, 3, errors))
    producer.start()
    received = list(feed.records_iter())
    producer.join(5)
    assert errors == []
    assert [(r["page"], r["n"]) for r in received if isinstance(r, dict)] == [
        (page, n) for page in range(50) for n in range(3)
    ]


def test_the_queue_bounds_what_is_held_while_the_load_is_slow() -> None:
    feed = RecordFeed(max_pages=3)
    errors: list[BaseException] = []
    producer = threading.Thread(target=_produce, args=(feed, 20, 1, errors), daemon=True)
    producer.start()
    time.sleep(0.3)  # nobody reads: the producer must be waiting on the full queue, not racing ahead
    assert feed._pages.qsize() == 3
    assert producer.is_alive()
    assert len(list(feed.records_iter())) == 20
    producer.join(5)
    assert errors == []


def test_a_failed_call_makes_the_load_raise_after_the_pages_already_fed() -> None:
    feed = RecordFeed()
    feed.put([1, 2])
    feed.fail(RuntimeError("page 3 answered 500"))
    records = feed.records_iter()
    seen: list[JsonValue] = [next(records), next(records)]
    with pytest.raises(CallFailedError, match="page 3 answered 500"):
        next(records)
    assert seen == [1, 2]


def test_a_load_that_stops_reading_stops_the_call_instead_of_blocking_it() -> None:
    feed = RecordFeed(max_pages=1)
    errors: list[BaseException] = []
    producer = threading.Thread(target=_produce, args=(feed, 1000, 1, errors), daemon=True)
    producer.start()
    records = feed.records_iter()
    assert next(records) == {"page": 0, "n": 0}
    records.close()  # the load failed: its generator is closed
    producer.join(5)
    assert not producer.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], FeedAbandonedError)


def test_finishing_twice_or_after_a_failure_changes_nothing() -> None:
    feed = RecordFeed()
    feed.put(["a"])
    feed.finish()
    feed.fail(RuntimeError("too late"))
    feed.finish()
    assert list(feed.records_iter()) == ["a"]


def test_a_load_that_returns_without_reading_everything_releases_the_call() -> None:
    feed = RecordFeed(max_pages=1)
    errors: list[BaseException] = []
    producer = threading.Thread(target=_produce, args=(feed, 1000, 1, errors), daemon=True)
    producer.start()
    records = feed.records_iter()
    assert next(records) == {"page": 0, "n": 0}
    feed.close()  # the load gave up (e.g. the database refused a value) while its generator lives on
    producer.join(5)
    assert not producer.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], FeedAbandonedError)
