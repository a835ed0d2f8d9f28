"""Rejects files kept beyond the worker's disk: copied to the storage location the worker names.

A worker in a container loses its disk with the run; `DATAHUB_REJECTS_URL`, in the worker's
environment (a folder or an fsspec URL: `s3://bucket/rejects`, ...), is where each rejects file is
also written, under `<job>/<run id>/`. It is a worker setting on purpose: whoever can start a run
edits its parameters, and a parameter must never choose where data goes.
"""

from __future__ import annotations

import os
from pathlib import Path

import fsspec  # type: ignore[import-untyped]  # no stubs; one call used

REJECTS_URL_VAR = "DATAHUB_REJECTS_URL"


def rejects_storage() -> str | None:
    """Return the storage location of rejects files the worker names, or None."""
    return (os.environ.get(REJECTS_URL_VAR) or "").strip().rstrip("/") or None


def store_rejects_file(local: Path, *, job: str, run_id: str) -> str | None:
    """Copy a rejects file to the storage location, if one is set; return where it went.

    Raises `OSError` (or the fsspec backend's `ValueError` / `ImportError`) when it cannot be written.
    """
    root = rejects_storage()
    if root is None:
        return None
    folder = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in job)
    target = f"{root}/{folder}/{run_id}/{local.name}"
    fs, remote = fsspec.core.url_to_fs(target)
    fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
    fs.put_file(str(local), remote)
    return str(target)
