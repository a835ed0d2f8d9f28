"""The one masking function and the database URL parser, as pure functions."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from blocks import DatabaseConnection, basic_pair, mask, parse_database_url

SECRET = 'K3y/with+all="sorts" of \\ é&chars'


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote(SECRET),
        quote_plus(SECRET),
        quote(SECRET, safe="").replace("%2F", "%2f").replace("%C3%A9", "%c3%a9"),
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        repr(SECRET)[1:-1],
    ],
    ids=["raw", "percent", "percent-keeps-slash", "form", "lower-hex", "json", "json-utf8", "repr"],
)
def test_every_form_of_a_secret_is_masked(form: str) -> None:
    assert mask(f"server said: {form}!", [SECRET]) == "server said: ***!"


def test_a_basic_pair_is_masked_raw_and_percent_encoded() -> None:
    pair = basic_pair("hub", SECRET)
    text = f"Authorization: Basic {pair} / {quote(pair, safe='')}"
    assert mask(text, [SECRET, pair]) == "Authorization: Basic *** / ***"


def test_short_and_empty_values_are_not_secrets() -> None:
    assert mask("abc and abc", ["abc", "", None]) == "abc and abc"


def test_a_secret_inside_a_longer_one_does_not_leave_the_rest() -> None:
    assert mask("x S3cret-long-S3cret y", ["S3cret", "S3cret-long-S3cret"]) == "x *** y"


@pytest.mark.parametrize(
    ("url", "password", "host", "port", "database"),
    [
        ("postgresql+psycopg://hub:P@ss:w@rd@db.example.com:5432/hub", "P@ss:w@rd", "db.example.com", 5432, "hub"),
        ("postgresql+psycopg://hub:P%40ss@db.example.com/hub?sslmode=require", "P@ss", "db.example.com", None, "hub"),
        ("postgresql://hub:100%@[::1]:5433/hub", "100%", "::1", 5433, "hub"),
        ("postgresql://hub@db/hub", None, "db", None, "hub"),
        ("sqlite:////var/data/hub@2.db", None, None, None, "/var/data/hub@2.db"),
    ],
)  # fmt: skip
def test_database_urls_are_parsed_at_the_last_at_sign(
    url: str, password: str | None, host: str | None, port: int | None, database: str
) -> None:
    parsed = parse_database_url(url)
    assert (parsed.password, parsed.host, parsed.port, parsed.database) == (password, host, port, database)


def test_the_display_url_hides_a_password_with_a_raw_at_sign() -> None:
    block = DatabaseConnection(url="postgresql+psycopg://hub:Db@S3cret-pw@db.example.com:5432/hub")
    assert block.display_url() == "postgresql+psycopg://hub:***@db.example.com:5432/hub"
    assert block.secret_values() == ["Db@S3cret-pw"]
