"""Import CSV files from an FTP, FTPS or SFTP server into the hub database.

`CsvImportJob` is the flow's only parameter and the single source of truth: Prefect builds the UI
form from it and `prefect.yaml` holds instances of it. Run one locally with
`python -m flows.import_csv_from_ftp job.yaml`.
"""

from __future__ import annotations

import glob
import posixpath
import sys
import tempfile
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import sqlalchemy as sa
from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from pydantic import ConfigDict, Field, model_validator

from blocks.database import state_dir
from blocks.ftp import FtpConnection
from blocks.run_cache import load_block
from flows._job import JOB_NAME, command_line, load_job_file
from tasks.csv.load import import_csv_file
from tasks.csv.reader import CsvFormat
from tasks.errors import BadFileError, ImportJobError, SourceUnavailableError
from tasks.files import (
    Downloaded,
    HeldSession,
    Prefetcher,
    RemoteFile,
    check_ftp_connection,
    fetch,
    list_leftover_claims,
    list_source_files,
    move,
    move_folder_problem,
    watch_source_file,
)
from tasks.hub.entities import EntityName, entity
from tasks.hub.ledger import find_loaded_file, record_move, record_skipped_copy
from tasks.hub.load import HubTarget, LoadSettings, RejectThresholdPercent, SourceFile
from tasks.hub.lock import BusyPolicy
from tasks.hub.mapping import CellFormats, field_problems
from tasks.job_model import BlockRef, JobModel, import_blocks
from tasks.run.history import conclude, recorded_run
from tasks.run.progress import current_progress
from tasks.run.report import (
    FileReport,
    ImportReport,
)
from tasks.shell import AfterImportStep, BeforeImportStep, after_import, before_import
from tasks.ui_schema import FormModel, OptionalMapping, json_editor

SettleSeconds = Annotated[
    float,
    Field(
        ge=0,
        le=600,
        description="Wait between two looks at the source; a file whose size or time changed is still "
        "being written and waits for the next run.",
    ),
]
MinAgeSeconds = Annotated[
    float, Field(ge=0, description="A file modified more recently than this is left for the next run.")
]


class SingleFile(FormModel):
    """Import one file, given by its full path."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Single file")

    kind: Literal["file"] = Field(default="file", description="Import one file by its path.")
    file_path: str = Field(
        min_length=1,
        description="Full path of the file on the server, file name included, e.g. "
        "`folder/sub-folder/import-products.csv`.",
    )
    outbound_dir: str | None = Field(
        default=None, description="Folder to move the file to once imported. Empty: leave it in place."
    )
    failed_dir: str | None = Field(
        default=None, description="Folder to move the file to when it fails. Empty: leave it in place."
    )
    settle_seconds: SettleSeconds = 2.0
    min_age_seconds: MinAgeSeconds = 0.0

    @model_validator(mode="after")
    def _check_move_folders(self) -> SingleFile:
        return _checked_move_folders(self)


class Folder(FormModel):
    """Bulk mode: import every matching file of an inbound folder, one by one, oldest first."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Folder (bulk)")

    kind: Literal["folder"] = Field(default="folder", description="Import every file of a folder.")
    inbound_dir: str = Field(min_length=1, description="Folder holding the incoming files.")
    outbound_dir: str = Field(min_length=1, description="Folder each file is moved to once imported.")
    pattern: str = Field(default="*.csv", min_length=1, description="File names to import (shell pattern).")
    failed_dir: str | None = Field(
        default=None, description="Folder a failed file is moved to. Empty: a failed file stays in inbound."
    )
    settle_seconds: SettleSeconds = 2.0
    min_age_seconds: MinAgeSeconds = 0.0

    @model_validator(mode="after")
    def _check_move_folders(self) -> Folder:
        return _checked_move_folders(self)


MoveFolders = TypeVar("MoveFolders", SingleFile, Folder)


def _checked_move_folders(source: MoveFolders) -> MoveFolders:
    for field in ("outbound_dir", "failed_dir"):
        folder = getattr(source, field)
        problem = None if folder is None else move_folder_problem(folder)
        if problem:
            raise ValueError(f"`{field}` {folder!r}: {problem}")
    return source


Source = Annotated[SingleFile | Folder, Field(discriminator="kind")]


class CsvImportJob(JobModel):
    """One CSV import job: where the files are, how to read them, what they hold, where they go."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="CSV import job")

    name: str = Field(
        pattern=JOB_NAME,
        description="Unique job name (letters, digits, `-`, `_`, `.`); also the deployment's name.",
    )
    connection: str = Field(min_length=1, description="Name of the FTP Connection block to read from.")
    entity: EntityName = Field(description="What the files hold: one entity of the hub catalogue.")
    source: Source = Field(description="One file by its path, or every file of a folder (bulk mode).")
    csv: CsvFormat = Field(description="Delimiter and encoding of the files.")
    mapping: OptionalMapping[str, str] = Field(
        default=None,
        json_schema_extra=json_editor,  # the v2 form shows `dict | None` with no editor
        description="CSV column header -> entity field. Empty (`{}` or none): columns are matched by the "
        "entity's standard headers (e.g. `Product External Id`). `CF_<id>` columns are read as custom fields.",
    )
    formats: CellFormats = Field(default_factory=CellFormats, description="How cells are written.")
    target: HubTarget = None
    reject_threshold_percent: RejectThresholdPercent = 10.0
    force: bool = Field(default=False, description="Import files the ledger has already seen.")
    before_import: BeforeImportStep | None = Field(
        default=None, description="Shell step run on each downloaded file before it is read (e.g. unpack)."
    )
    after_import: AfterImportStep | None = Field(
        default=None, description="Shell step run once after the load, on SUCCESS (e.g. re-index)."
    )
    busy: BusyPolicy = Field(
        default_factory=BusyPolicy,
        description="What a run does while another run of this job is still going.",
    )

    @model_validator(mode="after")
    def _check_mapping(self) -> CsvImportJob:
        if self.mapping is not None:
            problems = field_problems(entity(self.entity), self.mapping)
            if problems:
                raise ValueError("`mapping`: " + "; ".join(problems) + ".")
        return self

    def blocks(self) -> list[BlockRef]:
        """Return the saved blocks the job names: its FTP connection, target and shell steps."""
        connection = BlockRef("connection", FtpConnection, self.connection)
        return [connection, *import_blocks(self.target, self.before_import, self.after_import)]


@flow(name="import-csv-from-ftp", flow_run_name="{job.name}", validate_parameters=True)
def import_csv_from_ftp(job: CsvImportJob) -> State:
    """Import the job's file(s): download, load in one transaction, move; report what happened."""
    report = recorded_run(
        job=job.name,
        entity=job.entity,
        target=job.target,
        kind="csv-ftp",
        busy=job.busy,
        work=partial(_import_files, job),
    )
    return conclude(report)


def _import_files(job: CsvImportJob, report: ImportReport, engine: sa.Engine) -> None:
    # One database engine (the run history's, also every file's load) and one file session for the
    # whole run; the next file downloads while the current one loads (tasks.files.held).
    work = state_dir() / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=work, prefix="run-") as local_dir,
        HeldSession(load_block(FtpConnection, job.connection)) as held,
    ):
        files = _source_files(job, report)
        progress = current_progress()
        progress.plan_files(len(files))
        download = partial(_download, held, local_dir=Path(local_dir), claim=_claims(job))
        prefetcher = Prefetcher(files, download, key=lambda remote: remote.path)
        for remote, downloading in prefetcher.results():
            try:
                outcome = _import_one(job, held, remote, downloading, report.run_id, engine)
            except SourceUnavailableError:
                _put_back_ahead(job, held, prefetcher.ahead())
                raise
            progress.file_done()
            if outcome is None:
                report.warnings.append(f"{remote.path} was gone when its turn came (moved by someone else?).")
            else:
                report.add(*outcome)
    after_import(job.after_import, report)


def _download(held: HeldSession, remote: RemoteFile, *, local_dir: Path, claim: bool) -> Downloaded | None:
    return fetch(held, remote.path, local_dir, claim=claim)


def _put_back_ahead(
    job: CsvImportJob, held: HeldSession, ahead: tuple[RemoteFile, Future[Downloaded | None]] | None
) -> None:
    """A run that stops puts back the file it had already claimed and downloaded for its next turn."""
    if ahead is None:
        return
    remote, downloading = ahead
    try:
        downloaded = downloading.result()
    except ImportJobError:  # its own download failed: fetch put it back already
        return
    if downloaded is not None:
        downloaded.local_path.unlink(missing_ok=True)
        _put_back(job, held, FileReport(path=remote.path, status="FAILED"), downloaded)


def _claims(job: CsvImportJob) -> bool:
    """Whether files are claimed before download: only a file the run moves afterwards needs it."""
    return bool(job.source.outbound_dir or job.source.failed_dir)


def _source_files(job: CsvImportJob, report: ImportReport) -> list[RemoteFile]:
    """Return the files to import: those a stopped run left claimed first, then the settled ones."""
    source = job.source
    if isinstance(source, SingleFile):
        folder = posixpath.dirname(source.file_path)
        pattern = glob.escape(posixpath.basename(source.file_path))
        listing = watch_source_file(
            job.connection,
            source.file_path,
            settle_seconds=source.settle_seconds,
            min_age_seconds=source.min_age_seconds,
            move_dirs=_move_dirs(job),
        )
    else:
        folder, pattern = source.inbound_dir, source.pattern
        listing = list_source_files(
            job.connection,
            folder,
            pattern,
            settle_seconds=source.settle_seconds,
            min_age_seconds=source.min_age_seconds,
            move_dirs=_move_dirs(job),
        )
    # Looked for after the source (whose paths are checked there first), imported before it.
    leftovers = list_leftover_claims(job.connection, folder, pattern) if _claims(job) else []
    if isinstance(source, SingleFile) and not (
        leftovers or listing.ready or listing.growing or listing.unreadable
    ):
        report.warnings.append(f"{source.file_path} is not on the server (already imported and moved?).")
    report.warnings += [
        f"{f.path} is still being written; it waits for the next run." for f in listing.growing
    ]
    report.warnings += listing.unreadable
    return [claimed.original for claimed in leftovers] + list(listing.ready)


def _move_dirs(job: CsvImportJob) -> list[str]:
    return [folder for folder in (job.source.outbound_dir, job.source.failed_dir) if folder]


def _import_one(
    job: CsvImportJob,
    held: HeldSession,
    remote: RemoteFile,
    downloading: Future[Downloaded | None],
    run_id: str,
    engine: sa.Engine,
) -> tuple[FileReport, list[Any]] | None:
    """Import one file; a failure caused by the file fails it alone, and the run goes on.

    Unavailability and conflicts with another writer (`SourceUnavailableError`) are not the file's
    fault: they stop the run and the file is put back where it was (if the server is down too, it
    stays claimed and the next run takes it up first). None: the file was gone.
    """
    downloaded: Downloaded | None = None
    try:
        downloaded = downloading.result()
        if downloaded is None:
            return None
        return _load_and_move(job, held, downloaded, run_id, engine)
    except SourceUnavailableError:
        if downloaded is not None:  # the hub went away: the file goes back to inbound if the server lets it
            _put_back(job, held, FileReport(path=remote.path, status="FAILED"), downloaded)
        raise
    except BadFileError as exc:
        report = FileReport(path=remote.path, status="FAILED", size=remote.size, message=str(exc))
    except ImportJobError as exc:  # refused by the server, or a shell step failed: fix the job, not the file
        report = FileReport(path=remote.path, status="FAILED", size=remote.size, message=str(exc))
        _put_back(job, held, report, downloaded)
        return report, []
    except Exception as exc:  # a file must never block the files after it, even through a bug
        get_run_logger().exception("Unexpected error importing %s", remote.path)
        report = FileReport(
            path=remote.path,
            status="FAILED",
            size=remote.size,
            message=f"{remote.path}: unexpected error while reading it ({type(exc).__name__}: {exc}); "
            "nothing of it was loaded. Check the file; report the error if the file looks right.",
        )
    if downloaded is not None:  # a file that failed before it was claimed stays where it is
        _move_after(job, held, report, engine=engine, downloaded=downloaded, run_id=run_id)
    return report, []


def _load_and_move(
    job: CsvImportJob, held: HeldSession, downloaded: Downloaded, run_id: str, engine: sa.Engine
) -> tuple[FileReport, list[Any]]:
    remote = downloaded.remote
    try:
        seen = None if job.force else find_loaded_file(engine, job.name, sha256=downloaded.sha256)
        if seen is not None:
            report = FileReport(
                path=remote.path,
                status="SKIPPED",
                size=remote.size,
                sha256=downloaded.sha256,
                message=f"Already imported by this job (same content as {seen.path}); run with `force` to import again.",
            )
            _move_after(job, held, report, engine=engine, downloaded=downloaded, run_id=run_id)
            return report, []
        facts = {"DATAHUB_JOB": job.name, "DATAHUB_ENTITY": job.entity, "DATAHUB_REMOTE_PATH": remote.path}
        with before_import(job.before_import, downloaded.local_path, facts) as local_path:
            source = SourceFile(remote.path, local_path, remote.size, remote.modified, downloaded.sha256)
            report, rejects = import_csv_file(
                engine,
                source,
                job.csv,
                _settings(job, run_id),
                rejects_dir=state_dir() / "rejects" / run_id,
                logger=get_run_logger(),
            )
    finally:
        downloaded.local_path.unlink(missing_ok=True)
    _move_after(job, held, report, engine=engine, downloaded=downloaded, run_id=run_id)
    return report, rejects


def _move_after(
    job: CsvImportJob,
    held: HeldSession,
    report: FileReport,
    *,
    engine: sa.Engine,
    downloaded: Downloaded,
    run_id: str,
) -> None:
    destination = job.source.failed_dir if report.status == "FAILED" else job.source.outbound_dir
    if not destination:
        _put_back(job, held, report, downloaded)
        return
    try:
        report.moved_to = move(held, downloaded.claimed_path or report.path, destination)
    except ImportJobError as exc:
        if report.status != "FAILED":
            report.message = f"Loaded and committed, but not moved: {exc} The next run moves it without importing it again."
            report.status = "FAILED"
        else:
            report.message += f" It could not be moved to the failed folder either: {exc}"
        _put_back(job, held, report, downloaded)
        return
    if report.status != "FAILED":
        _ledger_move(job, report, engine, downloaded, run_id)


def _put_back(
    job: CsvImportJob, held: HeldSession, report: FileReport, downloaded: Downloaded | None
) -> None:
    """Return a claimed file the run does not move on to its folder (never over a newer upload)."""
    if downloaded is None or downloaded.claimed_path is None:
        return
    folder = posixpath.dirname(report.path)
    try:
        back = move(held, downloaded.claimed_path, folder or ".")
    except ImportJobError as exc:
        report.message += f" It stays claimed as {downloaded.claimed_path}; the next run takes it up: {exc}"
        return
    if back != report.path:
        report.message += f" A new file had taken its name meanwhile: it was put back as {back}."


def _ledger_move(
    job: CsvImportJob, report: FileReport, engine: sa.Engine, downloaded: Downloaded, run_id: str
) -> None:
    assert report.moved_to is not None
    loaded = find_loaded_file(engine, job.name, sha256=downloaded.sha256)
    # The file this job imported and has not moved yet (a run stopped before its move): complete its
    # row. Any other skipped file is a re-sent copy: its own row, so the original keeps its own move.
    if loaded is not None and (
        report.status != "SKIPPED" or (loaded.path == report.path and loaded.moved_to is None)
    ):
        record_move(engine, loaded.id, report.moved_to)
        return
    record_skipped_copy(
        engine,
        job=job.name,
        path=report.path,
        size=downloaded.remote.size,
        modified_at=downloaded.remote.modified,
        sha256=downloaded.sha256,
        run_id=run_id,
        moved_to=report.moved_to,
    )


def _settings(job: CsvImportJob, run_id: str) -> LoadSettings:
    return LoadSettings(
        job=job.name,
        run_id=run_id,
        entity=job.entity,
        mapping=job.mapping,
        formats=job.formats,
        reject_threshold_percent=job.reject_threshold_percent,
        force=job.force,
    )


def load_job(path: Path) -> CsvImportJob:
    """Read a job from a YAML file holding either the job itself or `{job: ...}`."""
    return load_job_file(CsvImportJob, path)


def job_folders(job: CsvImportJob) -> tuple[list[str], list[str]]:
    """Return the folders the job reads from and the folders it writes (moves) into."""
    source = job.source
    read = (
        [source.inbound_dir] if isinstance(source, Folder) else [posixpath.dirname(source.file_path) or "."]
    )
    # Claiming a file renames it into a folder beside it: the source folder must be writable too.
    write = (read if _claims(job) else []) + _move_dirs(job)
    return read, write


def check_job_connection(job: CsvImportJob) -> list[str]:
    """Test the job's connection: login, read rights on its source, write rights where it moves files."""
    read, write = job_folders(job)
    return check_ftp_connection.fn(job.connection, read, write)


def check_job(job: CsvImportJob) -> int:
    problems = check_job_connection(job)
    print("\n".join(f"problem: {p}" for p in problems) or f"{job.connection}: connection and folders OK")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    """Run (or, with --check, test the connection of) the job file given on the command line."""
    return command_line(
        argv,
        module="flows.import_csv_from_ftp",
        model=CsvImportJob,
        flow=import_csv_from_ftp,
        check=check_job,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
