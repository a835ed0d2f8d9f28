"""What a file server reports about its files: remote files, directory entries and settled listings."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

from tasks.errors import BadFileError
from tasks.files.paths import safe_remote_path, shown_name

CHUNK_BYTES = 64 * 1024

EntryKind = Literal["file", "dir", "other"]


@dataclass(frozen=True)
class RemoteFile:
    """A plain file on the server: path relative to the root, size in bytes, UTC modification time."""

    path: str
    size: int
    modified: datetime | None


@dataclass(frozen=True)
class ClaimedFile:
    """A file renamed into the claim folder beside it for this run, so nobody else changes it meanwhile.

    `original` holds the facts of the claimed file under the path it had before (the path the report and
    the ledger keep); `claimed_path` is where it is now. `leftover` says it was already claimed: by an
    earlier attempt of the same task, or by a run that stopped before moving it.
    """

    original: RemoteFile
    claimed_path: str
    leftover: bool = False


class FolderScan(NamedTuple):
    """The plain files of a folder that match a pattern, oldest first, and why others were skipped."""

    files: list[RemoteFile]
    unreadable: list[str]


@dataclass(frozen=True)
class Listing:
    """Files ready to import, files still being written (changed or too young), and files skipped.

    `unreadable` says, one sentence each, which matching files could not be read from the listing (a
    name that is not UTF-8, a size that is not a number...) and that they stay on the server.
    """

    ready: list[RemoteFile]
    growing: list[RemoteFile]
    unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """One directory entry as a backend reports it, before path checks.

    `name` is decoded with ``surrogateescape``: bytes that are not UTF-8 survive as lone surrogates
    (see `is_utf8`). `problem` says why a fact of the entry could not be read; it is then skipped.
    """

    name: str
    size: int
    modified: datetime | None
    kind: EntryKind
    problem: str | None = None


def decode_name(raw: bytes) -> str:
    """Decode a name as the server sent it; bytes that are not UTF-8 are kept, not refused."""
    return raw.decode("utf-8", "surrogateescape")


def is_utf8(name: str) -> bool:
    """Say whether `name` (from `decode_name`) was valid UTF-8, so it can be sent back to the server."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_entry(folder: str, entry: Entry) -> RemoteFile | str | None:
    """Return the file `entry` of `folder` stands for, or why it must be skipped, or None for no file.

    A skipped file stays on the server; the sentence says why and what a person can do about it.
    """
    shown = shown_name(posixpath.join(folder, entry.name))
    if not is_utf8(entry.name):
        return (
            f"{shown} is skipped: its name is not valid UTF-8, so it cannot be named over this connection. "
            "It stays on the server until a person renames it."
        )
    if entry.problem is not None:
        return f"{shown} is skipped: {entry.problem}. It stays on the server for a person to look at."
    try:
        path = safe_remote_path(folder, entry.name)
    except BadFileError as exc:
        return str(exc).rstrip(".") + "; until then it stays there and is skipped."
    # A plain file "directly in the folder": a name with slashes that stays inside is still refused.
    return RemoteFile(path, entry.size, entry.modified) if posixpath.dirname(path) == folder else None


def _age_seconds(file: RemoteFile, now: datetime) -> float:
    # A server that reports no time cannot make a file look young; the settle look still applies.
    return float("inf") if file.modified is None else (now - file.modified).total_seconds()


def classify_listing(
    first: list[RemoteFile],
    second: list[RemoteFile],
    *,
    now: datetime,
    min_age_seconds: float,
    unreadable: list[str] | None = None,
) -> Listing:
    """Split the second look into ready files (unchanged since the first look, old enough) and growing.

    `unreadable` (what the looks could not read) is carried over into the listing as it is.
    """
    before = {file.path: file for file in first}
    ready: list[RemoteFile] = []
    growing: list[RemoteFile] = []
    for file in second:
        settled = before.get(file.path) == file and _age_seconds(file, now) >= min_age_seconds
        (ready if settled else growing).append(file)
    return Listing(ready=ready, growing=growing, unreadable=list(unreadable or []))
