"""What a file server reports about its files: remote files, directory entries and settled listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

CHUNK_BYTES = 64 * 1024

EntryKind = Literal["file", "dir", "other"]


@dataclass(frozen=True)
class RemoteFile:
    """A plain file on the server: path relative to the root, size in bytes, UTC modification time."""

    path: str
    size: int
    modified: datetime | None


@dataclass(frozen=True)
class Listing:
    """Files ready to import, and files still being written (changed or too young)."""

    ready: list[RemoteFile]
    growing: list[RemoteFile]


@dataclass(frozen=True)
class Entry:
    """One directory entry as a backend reports it, before path checks."""

    name: str
    size: int
    modified: datetime | None
    kind: EntryKind


def _age_seconds(file: RemoteFile, now: datetime) -> float:
    # A server that reports no time cannot make a file look young; the settle look still applies.
    return float("inf") if file.modified is None else (now - file.modified).total_seconds()


def classify_listing(
    first: list[RemoteFile], second: list[RemoteFile], *, now: datetime, min_age_seconds: float
) -> Listing:
    """Split the second look into ready files (unchanged since the first look, old enough) and growing."""
    before = {file.path: file for file in first}
    ready: list[RemoteFile] = []
    growing: list[RemoteFile] = []
    for file in second:
        settled = before.get(file.path) == file and _age_seconds(file, now) >= min_age_seconds
        (ready if settled else growing).append(file)
    return Listing(ready=ready, growing=growing)
