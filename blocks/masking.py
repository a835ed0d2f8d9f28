"""The one masking function: every message, log line, report, artifact and file that may quote a block's
secret passes it through `mask` first.

A secret reaches text in more forms than its own: a server echoes it percent-encoded (from a URL or a
form body), escaped inside JSON or a Python repr (`\\"`, `\\\\`, `\\u00e9`), or base64-encoded with its
user as a Basic `Authorization` header (`basic_pair`). Rather than list the encodings a server might use
(which characters it escapes, upper or lower hex), each character of a secret matches itself or any of
its escaped spellings, so every mix of them is masked. It lives in `blocks` (the lowest layer) because
the blocks that hold the secrets describe themselves with it too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import lru_cache

MASK = "***"
# Shorter values would mask ordinary words and numbers all over a message; no real credential is this short.
MIN_SECRET_CHARS = 4
_JSON_SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}


def basic_pair(user: str, secret: str) -> str:
    """Return what a Basic `Authorization` header carries for `user` and `secret`: base64 of `user:secret`."""
    return base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """Return `text` with every secret, in any of its raw, percent-encoded or JSON-escaped forms, as `***`."""
    pattern = _pattern(tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS})))
    return pattern.sub(MASK, text) if pattern is not None else text


@lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    if not secrets:
        return None
    # Longest first: a secret that contains another (a password inside its Basic pair's source) is masked whole.
    alternatives = ["".join(_char_forms(c) for c in s) for s in sorted(secrets, key=len, reverse=True)]
    return re.compile("|".join(alternatives))


def _char_forms(char: str) -> str:
    forms = [re.escape(char), "".join(_percent(b) for b in char.encode())]
    if char == " ":
        forms.append(r"\+")  # form and query encoding
    if char in _JSON_SHORT_ESCAPES:
        forms.append(re.escape("\\" + _JSON_SHORT_ESCAPES[char]))
    if not (char.isascii() and char.isprintable()):  # JSON (ensure_ascii) writes the rest as \uXXXX
        forms.append(r"\\u" + _any_case(f"{ord(char):04x}") if ord(char) <= 0xFFFF else _surrogates(char))
    return "(?:" + "|".join(forms) + ")"


def _percent(byte: int) -> str:
    return "%" + _any_case(f"{byte:02x}")


def _any_case(hex_digits: str) -> str:
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in hex_digits)


def _surrogates(char: str) -> str:
    # JSON (ensure_ascii) writes a character beyond the BMP as a UTF-16 surrogate pair.
    high, low = char.encode("utf-16-be")[:2], char.encode("utf-16-be")[2:]
    return "".join(r"\\u" + _any_case(part.hex()) for part in (high, low))
