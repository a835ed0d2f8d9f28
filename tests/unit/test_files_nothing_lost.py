"""Pure rules of issue 14 in tasks/files: unreadable entries.

No server and no Prefect: each rule is a function of its arguments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.files.ftplib_backend import entry_from_facts
from tasks.files.listing import Entry, RemoteFile, classify_listing, decode_name, is_utf8, read_entry
from tasks.files.paths import shown_name

NOW = datetime(2026, 11, 23, 10, 15, 0, tzinfo=UTC)
NOT_UTF8 = decode_name(b"a-poison-\xff\xfe.csv")

# -- names shown in messages ------------------------------------------------------------------------


def test_shown_name_escapes_bytes_that_are_not_utf8_and_control_characters() -> None:
    assert shown_name(NOT_UTF8) == "a-poison-\\xff\\xfe.csv"
    assert shown_name("a\r\nb.csv") == "a\\r\\nb.csv"
    assert shown_name("prix-été.csv") == "prix-été.csv"


def test_decode_name_keeps_every_byte() -> None:
    raw = b"a-poison-\xff\xfe.csv"
    assert decode_name(raw).encode("utf-8", "surrogateescape") == raw
    assert not is_utf8(decode_name(raw))
    assert is_utf8(decode_name("prix-été.csv".encode()))


# -- entries that cannot be read --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        ({"type": "file", "size": "12k", "modify": "20260101000000"}, "'12k', which is not a number"),
        ({"type": "file", "size": "-1"}, "'-1', which is not a number"),
        ({"type": "file", "size": "1_000"}, "not a number"),
        ({"type": "file", "size": "١٢"}, "not a number"),
        ({"type": "file", "size": "12", "modify": "yesterday"}, "'yesterday', which is not a time"),
    ],
)
def test_entry_from_facts_names_a_fact_it_cannot_read(facts: dict[str, str], words: str) -> None:
    entry = entry_from_facts("a.csv", facts)
    assert entry.problem is not None
    assert words in entry.problem
    assert entry.kind == "file"


def test_entry_from_facts_reads_good_facts() -> None:
    entry = entry_from_facts("a.csv", {"type": "file", "size": "12", "modify": "20261123101500.123"})
    assert entry == Entry("a.csv", 12, NOW, "file")
    assert entry_from_facts("d", {"type": "dir"}) == Entry("d", 0, None, "dir")


def test_read_entry_skips_a_name_that_is_not_utf8_and_says_it_stays() -> None:
    reason = read_entry("in", Entry(NOT_UTF8, 3, NOW, "file"))
    assert isinstance(reason, str)
    assert "in/a-poison-\\xff\\xfe.csv" in reason
    assert "not valid UTF-8" in reason
    assert "stays on the server" in reason
    assert "renames" in reason


def test_read_entry_skips_a_fact_it_cannot_read() -> None:
    reason = read_entry("in", Entry("a.csv", 0, None, "file", "the server reports its size as '12k'"))
    assert reason == (
        "in/a.csv is skipped: the server reports its size as '12k'. It stays on the server for a person "
        "to look at."
    )


def test_read_entry_skips_a_control_character_in_the_name() -> None:
    reason = read_entry("in", Entry("a\x01.csv", 1, NOW, "file"))
    assert isinstance(reason, str)
    assert "control character" in reason
    assert "stays there and is skipped" in reason


def test_read_entry_reads_a_good_file_and_ignores_names_with_slashes() -> None:
    assert read_entry("in", Entry("a.csv", 1, NOW, "file")) == RemoteFile("in/a.csv", 1, NOW)
    assert read_entry("in", Entry("x/a.csv", 1, NOW, "file")) is None


def test_classify_listing_carries_what_could_not_be_read() -> None:
    file = RemoteFile("in/a.csv", 1, NOW - timedelta(hours=1))
    listing = classify_listing([file], [file], now=NOW, min_age_seconds=0, unreadable=["x is skipped"])
    assert (listing.ready, listing.growing, listing.unreadable) == ([file], [], ["x is skipped"])
    assert classify_listing([], [], now=NOW, min_age_seconds=0).unreadable == []
