"""Register the project's block types and save the example block documents, never from committed secrets.

`python -m deployments blocks` does what `prefect block register -m blocks.ftp ...` does (block types and
schemas), then saves the example documents the deployments of `prefect.yaml` name:

- `erp-ftp` (FTP Connection) from `DATAHUB_ERP_FTP_HOST`, `_PORT`, `_USER`, `_PASSWORD`, `_PROTOCOL`
  (optional: `_ROOT_DIR`, `_CA_BUNDLE`, `_HOST_KEY_FINGERPRINT`);
- `pim-api` and `erp-api` (API Connection) from `DATAHUB_PIM_API_BASE_URL`, `_AUTH`, `_API_KEY`
  (optional: `_API_KEY_HEADER`, `_BEARER_TOKEN`, `_USER`, `_PASSWORD`, `_TOKEN_URL`, `_CLIENT_ID`,
  `_CLIENT_SECRET`, `_SCOPE`, `_CA_BUNDLE`, `_TIMEOUT_SECONDS`), and the same with `DATAHUB_ERP_API_`;
- `hub-db` (Hub Database) from `DATAHUB_HUB_DB_URL`;
- `shop-reindex` (Shell Operation, the shell job's command) from `blocks.local.yaml` only.

Values can also come from the git-ignored file `blocks.local.yaml` at the project root (environment
variables win over it, field by field)::

    erp-ftp: {protocol: sftp, host: ftp.example.com, port: 22, username: importer, password: ...}
    pim-api: {base_url: "https://pim.example.com/api/", auth: api_key, api_key: ...}
    hub-db: {url: "postgresql+psycopg://hub:...@db.example.com:5432/hub"}
    shop-reindex: {commands: ["/opt/shop/bin/reindex --all"], working_dir: /opt/shop}
    other-ftp: {type: ftp-connection, host: ..., username: ..., password: ...}   # more blocks: give `type`

A block with nothing configured is skipped (never saved empty). The report names each saved block
with its secrets masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect.blocks.core import Block
from prefect_shell import ShellOperation
from pydantic import ValidationError

from blocks.api import ApiConnection
from blocks.database import DatabaseConnection
from blocks.ftp import FtpConnection
from blocks.masking import mask

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_FILE = PROJECT_ROOT / "blocks.local.yaml"

BLOCK_TYPES: tuple[type[Block], ...] = (FtpConnection, DatabaseConnection, ApiConnection, ShellOperation)
"""Every block type of the project, registered by `register_block_types`."""

# The example documents of `prefect.yaml`: block name -> (type, {environment variable suffix: field}).
FTP_ENV_FIELDS = {
    "HOST": "host",
    "PORT": "port",
    "USER": "username",
    "PASSWORD": "password",
    "PROTOCOL": "protocol",
    "ROOT_DIR": "root_dir",
    "CA_BUNDLE": "ca_bundle",
    "HOST_KEY_FINGERPRINT": "host_key_fingerprint",
}
API_ENV_FIELDS = {
    "BASE_URL": "base_url",
    "AUTH": "auth",
    "API_KEY": "api_key",
    "API_KEY_HEADER": "api_key_header",
    "BEARER_TOKEN": "bearer_token",
    "USER": "username",
    "PASSWORD": "password",
    "TOKEN_URL": "token_url",
    "CLIENT_ID": "client_id",
    "CLIENT_SECRET": "client_secret",
    "SCOPE": "scope",
    "CA_BUNDLE": "ca_bundle",
    "TIMEOUT_SECONDS": "timeout_seconds",
}
EXAMPLE_BLOCKS: dict[str, tuple[type[Block], dict[str, str]]] = {
    "erp-ftp": (FtpConnection, FTP_ENV_FIELDS),
    "pim-api": (ApiConnection, API_ENV_FIELDS),
    "erp-api": (ApiConnection, API_ENV_FIELDS),
    "hub-db": (DatabaseConnection, {"URL": "url"}),
    "shop-reindex": (ShellOperation, {}),  # a command list: set in blocks.local.yaml or the UI
}


@dataclass(frozen=True)
class Outcome:
    """What happened to one block document: saved (with a masked description) or skipped (and why)."""

    name: str
    block_type: str
    saved: bool
    detail: str

    def line(self) -> str:
        """Return the report line, e.g. `saved   FTP Connection 'erp-ftp': sftp://importer@host:22`."""
        verb = "saved  " if self.saved else "skipped"
        return f"{verb} {self.block_type} {self.name!r}: {self.detail}"


def env_prefix(block_name: str) -> str:
    """Return the environment variable prefix of a block, e.g. `erp-ftp` -> `DATAHUB_ERP_FTP_`."""
    return "DATAHUB_" + block_name.upper().replace("-", "_").replace(".", "_") + "_"


def register_block_types() -> list[str]:
    """Register every block type and schema of the project on the API; return their slugs."""
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()
    return [block_type.get_block_type_slug() for block_type in BLOCK_TYPES]


def read_local_file(path: Path) -> dict[str, dict[str, Any]]:
    """Return the block settings of a `blocks.local.yaml` file ({} when it does not exist)."""
    if not path.is_file():
        return {}
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise ValueError(f"{path}: expected `block-name: {{field: value, ...}}` entries")
    return {str(name): dict(fields) for name, fields in document.items()}


def block_settings(
    local: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str]
) -> dict[str, tuple[type[Block], dict[str, Any]]]:
    """Return each block to save with its type and fields: the local file's, overridden by the env's."""
    types = {block_type.get_block_type_slug(): block_type for block_type in BLOCK_TYPES}
    settings: dict[str, tuple[type[Block], dict[str, Any]]] = {}
    for name in [*EXAMPLE_BLOCKS, *(n for n in local if n not in EXAMPLE_BLOCKS)]:
        fields = dict(local.get(name, {}))
        slug = fields.pop("type", None)
        if name in EXAMPLE_BLOCKS:
            block_type, env_fields = EXAMPLE_BLOCKS[name]
        elif slug in types:
            block_type, env_fields = types[slug], {}
        else:
            raise ValueError(f"blocks.local.yaml: {name!r} needs `type:` one of {', '.join(sorted(types))}")
        prefix = env_prefix(name)
        for suffix, field in env_fields.items():
            if environ.get(prefix + suffix):
                fields[field] = environ[prefix + suffix]
        settings[name] = (block_type, fields)
    return settings


def describe(block: Block) -> str:
    """Return a description of a block without its secrets."""
    # Masked again whole: a secret pasted into a plain field (a base URL's query, a host) must not show.
    if isinstance(block, FtpConnection):
        return mask(block.describe(), block.secret_values())
    if isinstance(block, DatabaseConnection):
        return block.display_url()
    if isinstance(block, ApiConnection):
        return mask(f"{block.base_url} (auth {block.auth})", block.secret_values())
    if isinstance(block, ShellOperation):
        return f"{len(block.commands)} command(s)"  # not their text: a command line may hold a secret
    return type(block).__name__


def save_blocks(
    local_file: Path = LOCAL_FILE, environ: Mapping[str, str] | None = None, *, overwrite: bool = True
) -> list[Outcome]:
    """Save every configured block document; return one outcome per block (saved or skipped)."""
    environ = os.environ if environ is None else environ
    outcomes = []
    for name, (block_type, fields) in block_settings(read_local_file(local_file), environ).items():
        label = block_type.get_block_type_name()
        if not fields:
            # The first variables of each kind are the ones every such block needs; the rest are optional.
            suffixes = list(EXAMPLE_BLOCKS.get(name, (block_type, {}))[1])
            hint = ", ".join(env_prefix(name) + s for s in suffixes[:5]) + (
                ", ..." if len(suffixes) > 5 else ""
            )
            where = f"set {hint} or" if hint else "set it in"
            outcomes.append(Outcome(name, label, False, f"not configured; {where} {local_file.name}"))
            continue
        try:
            block = block_type.model_validate(fields)
        except ValidationError as exc:
            # The message names the fields only: pydantic would echo the (secret) input values.
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            outcomes.append(Outcome(name, label, False, f"invalid: {problems}"))
            continue
        block.save(name, overwrite=overwrite)
        outcomes.append(Outcome(name, label, True, describe(block)))
    return outcomes


def main(local_file: Path = LOCAL_FILE) -> int:
    """Register the block types, save the configured blocks, print the report; 1 if any is invalid."""
    slugs = register_block_types()
    print(f"registered block types: {', '.join(slugs)}")
    outcomes = save_blocks(local_file)
    for outcome in outcomes:
        print(outcome.line())
    return 1 if any(o.detail.startswith("invalid") for o in outcomes) else 0
