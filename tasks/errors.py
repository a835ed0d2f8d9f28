"""Errors an import job raises. Each tells its reader who must act and whether a retry can help.

ImportJobError                 the job owner must read this
+-- SourceUnavailableError     down, slow or throttling: a retry may help
+-- SourceRejectedError        login, path or request refused: fix the connection or the job
+-- BadFileError               content unreadable with the job's settings: fix the file or the job

Invalid job configuration stays a pydantic ``ValidationError``: it already carries the field's
location. Library errors are translated into this tree once, at the task boundary, with
``raise ... from``.
"""

from __future__ import annotations


class ImportJobError(Exception):
    """Base class; the message says what was wrong, where, and what to change."""


class SourceUnavailableError(ImportJobError):
    """The source did not answer usefully this time; retrying later may work."""


class SourceRejectedError(ImportJobError):
    """The source refused us; retrying with the same settings will fail again."""


class BadFileError(ImportJobError):
    """A file or payload could not be read with the job's settings."""
