"""Errors an import job raises: the whole tree. Each tells its reader who must act and whether a retry can help.

ImportJobError                     the job owner must read this
+-- ShellStepError                 a before/after shell step failed; its command and exit code say why
+-- ImportFailedError              a run ended FAILED; carries its report (its files' errors say why)
+-- JobBusyError                   another run of the job holds its lock: this run did nothing
+-- SourceUnavailableError         down, slow or throttling: a retry may help
|   +-- HubConflictError           another writer changed the same rows or tables: the load rolled back
|   +-- TokenUnavailableError      the OAuth2 token endpoint failed; the request was not sent
|   +-- FeedAbandonedError         the load of a paging call stopped; the call stops fetching
|   +-- CallFailedError            the paging call failed; its load rolls back
+-- SourceRejectedError            login, path or request refused: fix the connection or the job
+-- BadFileError                   content unreadable with the job's settings: fix the file or the job
    +-- ThresholdExceededError     too many rows of one file rejected; the file was rolled back

Invalid job configuration stays a pydantic ``ValidationError``: it already carries the field's
location. Library errors are translated into this tree once, at the task boundary, with
``raise ... from``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.run.report import ImportReport

__all__ = [
    "BadFileError",
    "CallFailedError",
    "FeedAbandonedError",
    "HubConflictError",
    "ImportFailedError",
    "ImportJobError",
    "JobBusyError",
    "ShellStepError",
    "SourceRejectedError",
    "SourceUnavailableError",
    "ThresholdExceededError",
    "TokenUnavailableError",
]


class ImportJobError(Exception):
    """Base class; the message says what was wrong, where, and what to change."""


class SourceUnavailableError(ImportJobError):
    """The source did not answer usefully this time; retrying later may work."""


class SourceRejectedError(ImportJobError):
    """The source refused us; retrying with the same settings will fail again."""


class BadFileError(ImportJobError):
    """A file or payload could not be read with the job's settings."""


class ThresholdExceededError(BadFileError):
    """Too many rows of one file were rejected; the file was rolled back."""


class JobBusyError(ImportJobError):
    """Another run of the same job holds the job's lock; this run did nothing and is skipped."""


class HubConflictError(SourceUnavailableError):
    """Another writer loaded the same keys or created the same tables at once; retried, then given up.

    Not the file's fault: the load rolled back and the file stays where it is for the next run.
    """


class TokenUnavailableError(SourceUnavailableError):
    """The OAuth2 token endpoint could not be reached or failed; the request was not sent."""


class FeedAbandonedError(SourceUnavailableError):
    """The load stopped reading the feed (it failed); the call stops fetching pages.

    Only the call's half of a paging call sees it: the load's own error is the one reported. The pages
    fetched so far were not loaded, so the run can be retried once the load's error is dealt with.
    """


class CallFailedError(SourceUnavailableError):
    """The paging call failed; the load rolls back (the call's own error is the one reported).

    Nothing was loaded, so the run can be retried; whether that helps now is what the call's error says.
    """


class ShellStepError(ImportJobError):
    """A shell step failed, timed out or could not start; the message names the block and command."""


class ImportFailedError(ImportJobError):
    """A run ended FAILED; carries its report so callers can still read what happened."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report
