"""`--help` and `schedule` answer without loading Prefect's server (its import is what made help slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import runpy, sys
sys.argv = [{module!r}, *{args!r}]
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
loaded = sorted(name for name in sys.modules if name.startswith("prefect.server"))
print("LOADED", loaded)
"""


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("deployments", ["--help"]),
        ("deployments", ["runs", "--help"]),
        ("deployments", ["deploy", "--help"]),
        ("deployments", ["schedule", "monthly on last weekday at 18:00 in Europe/Paris"]),
        ("deployments", ["schedule", "every 7 minutes"]),
        ("flows", ["--help"]),
        ("flows", ["run", "--help"]),
    ],
)
def test_help_and_schedule_never_import_prefects_server(module: str, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, args=args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout or "Next 5 runs:" in result.stdout
    assert result.stdout.rstrip().endswith("LOADED []"), result.stdout[-500:]
