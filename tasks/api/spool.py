"""Keep a call's responses on local disk as gzip-compressed NDJSON, and read its records back in order.

A paging call may bring millions of records: holding them in a list (and handing that list to the
load task as a parameter) would grow memory with the data. Instead each response body (one page, or
the one response of a default or retry call) is written as one JSON line of a `.ndjson.gz` file in
the run's work folder as it arrives; the load then streams the records back a page at a time. The
same file is what "export pages" keeps: it is copied as is to a folder or an fsspec URL.

Where exports may go is the worker's choice, never the run's: `export_pages_to` is a run parameter
(whoever can start a run edits it), so it must lie under `DATAHUB_EXPORT_ROOT`, set in the worker's
environment (a local folder or an fsspec URL). A relative `export_pages_to` is a folder under it.
Unset, exports are refused.
"""

from __future__ import annotations

import gzip
import json
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec  # type: ignore[import-untyped]  # no stubs; one call used

from tasks.api.calls import records_of
from tasks.api.jsonpath import JsonValue
from tasks.api.paging import page_records
from tasks.errors import SourceRejectedError, SourceUnavailableError

EXPORT_ROOT_VAR = "DATAHUB_EXPORT_ROOT"
SUFFIX = ".ndjson.gz"
COMPRESS_LEVEL = 1  # the file lives minutes; speed matters more than its size


@dataclass(frozen=True)
class Spool:
    """A finished spool file: where it is, where its records sit in each line, how many there are."""

    path: Path
    content_path: str | None
    paged: bool  # lines are pages (records by `page_records`) rather than whole responses
    responses: int
    records: int

    def records_iter(self) -> Iterator[JsonValue]:
        """Yield every record in order, reading one line (one response) at a time."""
        with gzip.open(self.path, "rb") as lines:
            for line in lines:
                body = json.loads(line)
                if self.paged:
                    yield from page_records(self.content_path or "$", body)
                else:
                    yield from records_of(body, self.content_path)


class SpoolWriter:
    """Append responses to a new spool file; `close()` returns the finished `Spool`."""

    def __init__(self, path: Path, content_path: str | None, *, paged: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.content_path = content_path
        self.paged = paged
        self.responses = 0
        self.records = 0
        # Open across calls to `write` (one per page); `close` or `discard` ends it.
        self._file = gzip.GzipFile(path, "wb", compresslevel=COMPRESS_LEVEL)

    def write(self, body: JsonValue, records: int, raw: bytes | None = None) -> None:
        """Append one response body (one line) holding `records` records.

        `raw` is the body as received, already known to be valid JSON: written as is when it is one
        UTF-8 line (encoding the decoded body again costs more than fetching it).
        """
        if raw is None or not _one_utf8_line(raw):
            raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        self._file.write(raw)
        self._file.write(b"\n")
        self.responses += 1
        self.records += records

    def close(self) -> Spool:
        """Finish the file and describe it."""
        self._file.close()
        return Spool(self.path, self.content_path, self.paged, self.responses, self.records)

    def discard(self) -> None:
        """Close and delete an unfinished file (the call failed)."""
        self._file.close()
        self.path.unlink(missing_ok=True)


def _one_utf8_line(raw: bytes) -> bool:
    # JSON in UTF-16/32 or with a BOM starts with a NUL or a BOM byte, not with `{` or `[`.
    start = raw.lstrip()[:1]
    return start in (b"{", b"[") and b"\n" not in raw and b"\r" not in raw


def export_folder(destination: str) -> str:
    """Return the folder `destination` names under the worker's export root; refuse any other place.

    Raises `SourceRejectedError` naming `DATAHUB_EXPORT_ROOT` when it is unset or `destination` leaves it.
    """
    root = os.environ.get(EXPORT_ROOT_VAR, "").strip().rstrip("/")
    why = (
        "`export_pages_to` is a run parameter (whoever can start a run edits it), so the worker's "
        f"environment decides where pages may be written: `{EXPORT_ROOT_VAR}`"
    )
    if not root:
        raise SourceRejectedError(
            f"Exporting the pages to {destination!r} is refused: {why} is not set on this worker. Set it "
            "to the folder (or fsspec URL) exports may go under, or empty the call's `export_pages_to`."
        )
    text = destination.strip()
    if ".." in text.replace("\\", "/").split("/"):
        folder = None  # never resolved: a `..` could climb out of the root
    elif "://" in text or text.startswith("/"):
        folder = text.rstrip("/")
    else:
        folder = f"{root}/{text.strip('/')}" if text.strip("/") else root
    if folder is None or not _under(folder, root):
        raise SourceRejectedError(
            f"Exporting the pages to {destination!r} is refused: it is not under {root!r}, and {why}. "
            "Give a folder relative to that root (e.g. `exports/shop`), or change "
            f"`{EXPORT_ROOT_VAR}` on the worker."
        )
    return folder


def _under(folder: str, root: str) -> bool:
    protocol, _ = fsspec.core.split_protocol(root)
    if protocol in (None, "file"):
        # Local: compared with links resolved, so a link under the root cannot point out of it.
        if fsspec.core.split_protocol(folder)[0] not in (None, "file"):
            return False
        real_root = os.path.realpath(str(fsspec.core.strip_protocol(root)))
        real = os.path.realpath(str(fsspec.core.strip_protocol(folder)))
        return os.path.commonpath([real_root, real]) == real_root
    clean = posixpath.normpath(folder.split("://", 1)[-1]) if "://" in folder else ""
    base = posixpath.normpath(root.split("://", 1)[-1])
    same = folder.split("://", 1)[0] == root.split("://", 1)[0]
    return same and (clean == base or clean.startswith(base + "/"))


def export_spool(spool: Spool, destination: str, name: str) -> str:
    """Copy the spool file to `destination` (under the worker's export root) as `name`; return where it went."""
    folder = export_folder(destination)
    target = f"{folder}/{name}{SUFFIX}"
    try:
        fs, remote = fsspec.core.url_to_fs(target)
        fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(spool.path), remote)
    except (OSError, ValueError, ImportError) as exc:
        raise SourceUnavailableError(
            f"Could not export the pages to {folder!r}: {type(exc).__name__} ({exc}). Check the call's "
            f"`pattern.export_pages_to` and `{EXPORT_ROOT_VAR}` (a writable folder, or an fsspec URL whose "
            "package is installed)."
        ) from exc
    return target
