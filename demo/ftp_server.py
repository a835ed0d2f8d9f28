"""A throwaway FTP server on 127.0.0.1 (pyftpdlib in a thread), for the demo and local trials."""

from __future__ import annotations

import logging
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
def local_ftp_server(root: Path, *, username: str, password: str, port: int = 0) -> Iterator[LocalFtpServer]:
    """Serve `root` over plain FTP on 127.0.0.1 (`port` 0: a free one) until the block exits."""
    pyftpdlib_log = logging.getLogger("pyftpdlib")
    if not pyftpdlib_log.handlers:
        # Without a handler of its own, pyftpdlib configures logging at INFO on every serve loop.
        pyftpdlib_log.addHandler(logging.StreamHandler())
        pyftpdlib_log.setLevel(logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_user(username, password, str(root), perm="elradfmwMT")
    # pyftpdlib keeps handler settings on the class, so each server gets its own subclass.
    handler: Any = type("DemoFtpHandler", (FTPHandler,), {"authorizer": authorizer, "banner": "datahub demo"})
    handler.log_prefix = "demo-ftp %(username)s"
    server = FTPServer(("127.0.0.1", port), handler)
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
