"""`Prefetcher`: files load in order, the next one's download at most one ahead, never the same path twice at once."""

from __future__ import annotations

import threading

from tasks.files import Prefetcher


class Recorder:
    """A fetch that notes what it started and waits until the test lets it finish."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, item: str) -> str:
        with self.lock:
            self.started.append(item)
        if item.startswith("bad"):
            raise ValueError(f"{item} is broken")
        return item.upper()


def test_each_item_comes_in_order_with_its_result_and_one_ahead_at_most() -> None:
    fetch = Recorder()
    prefetcher = Prefetcher(["a", "b", "c"], fetch, key=lambda item: item)
    seen = []
    for item, future in prefetcher.results():
        seen.append((item, future.result()))
        ahead = prefetcher.ahead()
        assert ahead is None or ahead[0] == {"a": "b", "b": "c"}[item]
        assert len(fetch.started) <= len(seen) + 1
    assert seen == [("a", "A"), ("b", "B"), ("c", "C")]
    assert prefetcher.ahead() is None


def test_a_failed_fetch_is_that_items_error_and_the_next_items_go_on() -> None:
    results = []
    for _item, future in Prefetcher(["a", "bad", "c"], Recorder(), key=lambda item: item).results():
        try:
            results.append(future.result())
        except ValueError as exc:
            results.append(str(exc))
    assert results == ["A", "bad is broken", "C"]


def test_an_item_with_the_same_key_as_the_current_one_waits_for_its_turn() -> None:
    fetch = Recorder()
    prefetcher = Prefetcher(["in/a.csv", "in/a.csv", "in/b.csv"], fetch, key=lambda item: item)
    order = []
    for index, (item, future) in enumerate(prefetcher.results()):
        future.result()
        if index == 0:
            assert prefetcher.ahead() is None  # the same path: not fetched beside the first
            assert fetch.started == ["in/a.csv"]
        order.append(item)
    assert order == ["in/a.csv", "in/a.csv", "in/b.csv"]
    assert fetch.started == order


def test_no_items_fetch_nothing() -> None:
    fetch = Recorder()
    assert list(Prefetcher([], fetch, key=lambda item: item).results()) == []
    assert fetch.started == []


def test_stopping_early_leaves_the_item_ahead_to_put_back() -> None:
    prefetcher = Prefetcher(["a", "b", "c"], Recorder(), key=lambda item: item)
    results = prefetcher.results()
    item, _ = next(results)  # the consumer stops at "a" (the hub went away) and never asks for more
    assert item == "a"
    ahead = prefetcher.ahead()
    assert ahead is not None
    assert (ahead[0], ahead[1].result()) == ("b", "B")
