"""A throwaway FTP server on 127.0.0.1 (pyftpdlib in a thread), for the demo and local trials."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


@dataclass(frozen=True)
class LocalFtpServer:
    """Where the local FTP server listens and what it serves."""

    host: str
    port: int
    root: Path
    username: str
    password: str


@contextmanager
def local_ftp_server(root: Path, *, username: str, password: str) -> Iterator[LocalFtpServer]:
    """Serve `root` over plain FTP on a free loopback port until the block exits."""
    authorizer = DummyAuthorizer()
    authorizer.add_user(username, password, str(root), perm="elradfmwMT")
    # pyftpdlib keeps handler settings on the class, so each server gets its own subclass.
    handler: Any = type("DemoFtpHandler", (FTPHandler,), {"authorizer": authorizer, "banner": "datahub demo"})
    handler.log_prefix = "demo-ftp %(username)s"
    server = FTPServer(("127.0.0.1", 0), handler)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            server.serve_forever(timeout=0.05, blocking=False)

    thread = threading.Thread(target=serve, name="demo-ftp", daemon=True)
    thread.start()
    host, port = server.address
    try:
        yield LocalFtpServer(host, port, root, username, password)
    finally:
        stopping.set()
        thread.join(timeout=5)
        server.close_all()
