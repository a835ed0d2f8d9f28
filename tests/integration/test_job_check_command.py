"""`./dev check JOB.yaml` as an engineer runs it: its own interpreter, Prefect's ephemeral server, a real FTP.

What the engineer reads is the whole of it: one line on stdout, and nothing Prefect adds at exit (it
once ended every check with `EventsWorker - Still processing items: 1 items remaining...`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures_servers import LocalFtp

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from blocks.ftp import FtpConnection
FtpConnection(
    protocol="ftp", host={host!r}, port={port}, username={username!r}, password={password!r}, timeout_seconds=5
).save("check-ftp", overwrite=True)
from flows.__main__ import main
sys.exit(main(["check", {job!r}]))
"""
JOB = """\
name: products-check
connection: check-ftp
entity: products
source: {kind: folder, inbound_dir: in, outbound_dir: out}
csv: {delimiter: ";"}
"""


def test_check_prints_its_line_and_nothing_else_at_exit(ftp_server: LocalFtp, tmp_path: Path) -> None:
    for folder in ("in", "out"):
        (ftp_server.root / folder).mkdir()
    job = tmp_path / "job.yaml"
    job.write_text(JOB, encoding="utf-8")
    script = SCRIPT.format(
        host=ftp_server.host,
        port=ftp_server.port,
        username=ftp_server.username,
        password=ftp_server.password,
        job=str(job),
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "check-ftp: connection and folders OK\n"
    assert "EventsWorker" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if "| WARNING" in line or "| ERROR" in line] == []
