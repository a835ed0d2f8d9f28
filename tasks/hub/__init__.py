"""The hub database: what a batch must hold, the entities, and loading batches into them in one transaction.

- ``entities``: the entity catalogue (tables, fields, types, keys); ``schema``: their tables and the
  system tables (runs, ledger, rejects); ``ledger``: runs and loaded files recorded in the hub
  (and forgotten on an operator's word); ``rejects``: each file's first rejects and true count, per run.
- ``contract``: the batch contract every source hands the hub (record and line columns) and the
  reject schema and codes.
- ``mapping``: source columns -> entity fields, and validation of a batch (rejects with their codes).
- ``staging``: batches staged in temporary tables, new keys checked, merged into the entity tables.
- ``lock``: one job, one writer: the job's lock held in the hub database for a whole run.
- ``load``: one file's (or one API run's) batches loaded whole or not at all, and ledgered.

The names below are the package's public face; everything else is private to it.
"""

from __future__ import annotations

from tasks.hub.contract import (
    EXTRA,
    FIELDS,
    LINE,
    MISSING,
    NOT_ALLOWED,
    NOT_BOOLEAN,
    NUL_BYTE,
    RECORD,
    REJECT_SCHEMA,
    TOO_FEW_FIELDS,
    TOO_LONG,
    TOO_MANY_FIELDS,
    WRONG_FORMAT,
    reserved_columns,
)
from tasks.hub.entities import (
    CUSTOM_FIELD_PREFIX,
    CUSTOM_FIELDS_COLUMN,
    ENTITIES,
    Entity,
    EntityName,
    TableSpec,
    catalogue_markdown,
    entity,
)
from tasks.hub.ledger import (
    ABANDONED,
    LedgerRow,
    RunTotals,
    fails_as_last_run,
    find_loaded,
    find_loaded_file,
    finish_run,
    forget_file,
    has_run,
    known_jobs,
    last_successful_start,
    ledger_rows,
    prepare_hub,
    recent_runs,
    record_move,
    record_skipped_copy,
    running_run,
    start_run,
)
from tasks.hub.load import (
    HubTarget,
    LoadSettings,
    RejectThresholdPercent,
    RunLogger,
    SourceFile,
    import_batches,
    load_prepared,
)
from tasks.hub.lock import BusyPolicy, OnBusy, job_lock
from tasks.hub.mapping import (
    CellFormats,
    MappingPlan,
    field_problems,
    near_misses,
    plan_mapping,
    validate_batch,
)
from tasks.hub.rejects import RejectedFile, rejected_files, stored_rejects

__all__ = [
    "ABANDONED",
    "CUSTOM_FIELDS_COLUMN",
    "CUSTOM_FIELD_PREFIX",
    "ENTITIES",
    "EXTRA",
    "FIELDS",
    "LINE",
    "MISSING",
    "NOT_ALLOWED",
    "NOT_BOOLEAN",
    "NUL_BYTE",
    "RECORD",
    "REJECT_SCHEMA",
    "TOO_FEW_FIELDS",
    "TOO_LONG",
    "TOO_MANY_FIELDS",
    "WRONG_FORMAT",
    "BusyPolicy",
    "CellFormats",
    "Entity",
    "EntityName",
    "HubTarget",
    "LedgerRow",
    "LoadSettings",
    "MappingPlan",
    "OnBusy",
    "RejectThresholdPercent",
    "RejectedFile",
    "RunLogger",
    "RunTotals",
    "SourceFile",
    "TableSpec",
    "catalogue_markdown",
    "entity",
    "fails_as_last_run",
    "field_problems",
    "find_loaded",
    "find_loaded_file",
    "finish_run",
    "forget_file",
    "has_run",
    "import_batches",
    "job_lock",
    "known_jobs",
    "last_successful_start",
    "ledger_rows",
    "load_prepared",
    "near_misses",
    "plan_mapping",
    "prepare_hub",
    "recent_runs",
    "record_move",
    "record_skipped_copy",
    "rejected_files",
    "reserved_columns",
    "running_run",
    "start_run",
    "stored_rejects",
    "validate_batch",
]
