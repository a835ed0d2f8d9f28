"""Pure rules of issue 14 in tasks/files: local names, move folders, claim paths, unreadable entries.

No server and no Prefect: each rule is a function of its arguments.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tasks.errors import BadFileError
from tasks.files import CLAIM_DIR, move_folder_problem
from tasks.files.ftplib_backend import entry_from_facts
from tasks.files.listing import Entry, RemoteFile, classify_listing, decode_name, is_utf8, read_entry
from tasks.files.paths import claim_paths, local_file_name, shown_name

NOW = datetime(2026, 11, 23, 10, 15, 0, tzinfo=UTC)
NOT_UTF8 = decode_name(b"a-poison-\xff\xfe.csv")

# -- local names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "in/a-" + "p" * 244 + ".csv",
        "in/" + "é" * 250 + ".csv",
        "in/" + "x" * 300,
        "in/" + "a." * 120 + "csv",
        "in/" + NOT_UTF8,
        "in/..\\..\\evil.csv",
        "in/x\x00y.csv",
        "in/.hidden",
    ],
)
def test_local_file_name_is_short_and_safe_whatever_the_remote_name(path: str) -> None:
    name = local_file_name(path)
    assert len(name) <= 80
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
    assert not name.startswith(".")
    assert name not in {".", ".."}


def test_local_file_name_of_a_250_character_name_keeps_its_start_and_extension() -> None:
    name = local_file_name("in/a-" + "p" * 244 + ".csv")
    assert re.fullmatch(r"a-p{38}-[0-9a-f]{12}\.csv", name), name


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("in/Offers.csv", "in/offers.csv"),
        ("in/a b.csv", "in/a_b.csv"),
        ("in/a.csv", "out/a.csv"),
        ("in/" + "p" * 100 + "1.csv", "in/" + "p" * 100 + "2.csv"),
        ("in/é.csv", "in/e.csv"),
    ],
)
def test_local_file_names_of_different_paths_differ(first: str, second: str) -> None:
    assert local_file_name(first) != local_file_name(second)
    assert local_file_name(first).lower() != local_file_name(second).lower()  # case-insensitive disks


def test_local_file_name_is_stable_and_keeps_two_suffixes() -> None:
    assert local_file_name("in/x.csv.gz") == local_file_name("in/x.csv.gz")
    assert re.fullmatch(r"x-[0-9a-f]{12}\.csv\.gz", local_file_name("in/x.csv.gz"))
    assert re.fullmatch(r"file-[0-9a-f]{12}\.csv", local_file_name("in/€€.csv"))


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


# -- move folders -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "words"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("..", "leads out of the connection's root folder"),
        ("../elsewhere", "leads out of the connection's root folder"),
        ("a/../../x", "leads out of the connection's root folder"),
        ("./../x", "leads out of the connection's root folder"),
        ("out\x00", "control character"),
        ("out\nDELE x", "control character"),
        (f"in/{CLAIM_DIR}", CLAIM_DIR),
        (f"{CLAIM_DIR}/x", CLAIM_DIR),
    ],
)
def test_move_folder_problem_says_why_a_folder_is_refused(folder: str, words: str) -> None:
    problem = move_folder_problem(folder)
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize("folder", ["out", "in/done", "a/../out", "/data/out", "/../x", ".", "out/", "..out"])
def test_move_folder_problem_lets_folders_inside_the_root_and_absolute_ones_pass(folder: str) -> None:
    assert move_folder_problem(folder) is None


# -- claim paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "original", "claimed"),
    [
        ("in/a.csv", "in/a.csv", f"in/{CLAIM_DIR}/a.csv"),
        ("a.csv", "a.csv", f"{CLAIM_DIR}/a.csv"),
        (f"in/{CLAIM_DIR}/a.csv", "in/a.csv", f"in/{CLAIM_DIR}/a.csv"),
        (f"{CLAIM_DIR}/a.csv", "a.csv", f"{CLAIM_DIR}/a.csv"),
    ],
)
def test_claim_paths_keep_the_name_beside_the_original(path: str, original: str, claimed: str) -> None:
    assert claim_paths(path) == (original, claimed)


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


def test_local_file_name_still_refuses_a_path_without_a_name() -> None:
    with pytest.raises(BadFileError):
        local_file_name("in/..")
