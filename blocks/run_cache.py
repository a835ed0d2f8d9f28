"""Saved blocks, loaded once per flow run.

A bulk run of 1,000 files loaded its FTP and database blocks from the Prefect API 4,000 times; each
step now asks here. Blocks are cached by flow run, block type and name (an FTP block and a database
block may share a name); a new run forgets the previous run's blocks, so an edited block (a rotated
password) is read by the next run. Outside a flow run every call loads the block.
"""

from __future__ import annotations

import threading
from typing import TypeVar

from prefect import runtime
from prefect.blocks.core import Block

BlockT = TypeVar("BlockT", bound=Block)

_blocks: dict[tuple[str, type[Block], str], Block] = {}
_lock = threading.Lock()  # a run's tasks may ask from several threads at once


def load_block(kind: type[BlockT], name: str) -> BlockT:
    """Return the saved block `name` of type `kind`, loaded once per flow run."""
    run_id = runtime.flow_run.id
    if not run_id:
        return _load(kind, name)
    key = (str(run_id), kind, name)
    with _lock:
        for stale in [k for k in _blocks if k[0] != key[0]]:
            del _blocks[stale]
        block = _blocks.get(key)
    if block is None:
        block = _blocks.setdefault(key, _load(kind, name))
    if not isinstance(block, kind):  # pragma: no cover - the key holds the type
        raise TypeError(f"block {name!r} is not a {kind.__name__}")
    return block


def _load(kind: type[BlockT], name: str) -> BlockT:
    block = kind.load(name)
    # `load` is typed for sync and async callers alike; our callers are sync, so it returned the block.
    if not isinstance(block, kind):
        raise TypeError(f"block {name!r} did not load as a {kind.__name__}")
    return block
