"""Files on FTP, FTPS and SFTP servers: one session API over the ftplib and paramiko backends.

- ``session``: ``open_session(connection)`` logs in (the one SFTP/FTP login) and yields a ``FileSession``
  that lists, stats, downloads, moves and probes files; every path is POSIX, relative to the root folder.
- ``listing``: what a server reports about its files (files it cannot read are skipped and named in
  ``Listing.unreadable``); ``paths``: the pure rules that keep paths inside the root, derive local names
  and check move folders (``move_folder_problem``).
- Claims: ``FileSession.claim`` renames a file into ``<folder>/.datahub-claimed/`` before it is
  downloaded, so the file moved afterwards is the one imported; ``leftover_claims`` finds what a run
  that stopped left there.
- ``ftplib_backend``, ``paramiko_backend``: the protocol backends; ``failures``: their errors, translated
  once into ``tasks.errors``.
- ``tasks``: the Prefect tasks the CSV flow runs once per run (they load the block and open their own
  session), and the per-file steps on the run's ``HeldSession`` (``held``: one login per run, the next
  file downloaded while the current one loads, ``Prefetcher``).

The names below are the package's public face; everything else is private to it.
"""

from __future__ import annotations

from tasks.files.held import HeldSession, Prefetcher
from tasks.files.listing import ClaimedFile, Listing, RemoteFile
from tasks.files.paths import CLAIM_DIR, local_file_name, move_folder_problem
from tasks.files.session import (
    PROBE_PREFIX,
    FileSession,
    check_connection,
    open_session,
    watch_file,
    watch_listing,
)
from tasks.files.tasks import (
    Downloaded,
    check_ftp_connection,
    fetch,
    list_leftover_claims,
    list_source_files,
    move,
    unclaim,
    watch_source_file,
)

__all__ = [
    "CLAIM_DIR",
    "PROBE_PREFIX",
    "ClaimedFile",
    "Downloaded",
    "FileSession",
    "HeldSession",
    "Listing",
    "Prefetcher",
    "RemoteFile",
    "check_connection",
    "check_ftp_connection",
    "fetch",
    "list_leftover_claims",
    "list_source_files",
    "local_file_name",
    "move",
    "move_folder_problem",
    "open_session",
    "unclaim",
    "watch_file",
    "watch_listing",
    "watch_source_file",
]
