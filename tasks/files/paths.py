"""Pure rules for remote paths: keep every path inside the root folder and every file name safe."""

from __future__ import annotations

import hashlib
import posixpath
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime

from tasks.errors import BadFileError, SourceRejectedError

MAX_NAME_TRIES = 100
# The folder, beside the files of a folder, that files are renamed into while a run imports them.
CLAIM_DIR = ".datahub-claimed"

# Local names: at most this many characters of the remote stem, the hash, then the extension.
_LOCAL_STEM_CHARS = 40
_LOCAL_HASH_CHARS = 12
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
# Up to two short suffixes (`.csv`, `.csv.gz`): what a before-import step may go by to unpack a file.
_EXTENSION = re.compile(r"(?:\.[A-Za-z0-9]{1,10}){1,2}$")


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def resolve_root(login_dir: str, root_dir: str) -> str:
    """Return the absolute root folder: `root_dir` taken from the login folder when relative."""
    if _has_control_chars(root_dir):
        raise SourceRejectedError(
            f"The root_dir {root_dir!r} of the connection block contains a control character; fix it."
        )
    return posixpath.normpath(posixpath.join(login_dir or "/", root_dir))


def relative_to_root(root: str, path: str) -> str:
    """Return `path` (relative, or absolute inside `root`) as a normalized path relative to `root`."""
    if _has_control_chars(path):
        raise SourceRejectedError(f"The path {path!r} contains a control character; fix the path in the job.")
    if path.startswith("/"):
        return _inside_root(root, posixpath.normpath("/" + path.lstrip("/")), path)
    normalized = posixpath.normpath(path) if path else "."
    if normalized == ".." or normalized.startswith("../"):
        raise SourceRejectedError(
            f"The path {path!r} leads out of the connection's root folder {root!r}; give a path inside it."
        )
    return "" if normalized == "." else normalized


def _inside_root(root: str, absolute: str, original: str) -> str:
    base = posixpath.normpath("/" + root.lstrip("/"))
    if absolute == base:
        return ""
    prefix = base.rstrip("/") + "/"
    if not absolute.startswith(prefix):
        raise SourceRejectedError(
            f"The path {original!r} lies outside the connection's root folder {base!r}; "
            "give a path relative to the root folder."
        )
    return absolute[len(prefix) :]


def _name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if name.startswith("/"):
        return "it is absolute"
    if _has_control_chars(name):
        return "it contains a control character"
    return None


def safe_remote_path(folder: str, name: str) -> str:
    """Return `name` joined under `folder`; refuse names that are empty, absolute, odd or leave `folder`."""
    problem = _name_problem(name) or _name_problem(folder or ".")
    joined = posixpath.normpath(posixpath.join(folder, name)) if problem is None else ""
    base = posixpath.normpath(folder) if folder else "."
    inside = joined.startswith(base + "/") if base != "." else joined not in {"", ".", ".."}
    if problem is None and not (inside and not joined.startswith("../")):
        problem = "it leads out of the folder"
    if problem is not None:
        raise BadFileError(
            f"Refusing the remote file name {name!r} in folder {folder!r}: {problem}. "
            "Rename the file on the server."
        )
    return joined


def claim_paths(path: str) -> tuple[str, str]:
    """Return the original and the claimed path of the file at the relative `path`, either one given.

    `in/a.csv` is claimed as `in/.datahub-claimed/a.csv`, keeping its name; given the claimed path, the
    original is the same name in the folder above.
    """
    folder, name = posixpath.split(path)
    if posixpath.basename(folder) == CLAIM_DIR:
        return posixpath.join(posixpath.dirname(folder), name), path
    return path, posixpath.join(folder, CLAIM_DIR, name)


def local_file_name(path: str) -> str:
    """Return a short, safe local file name for the remote `path`, unique per path.

    Up to 40 safe characters of its stem, `-`, 12 hex digits of the SHA-256 of `path`, then its
    extension (`offers-0123456789ab.csv`): never over 80 characters, whatever the remote name holds, and
    two remote names that differ only in case or in odd characters never share a local name.
    """
    name = posixpath.basename(posixpath.normpath(path)) if path else ""
    if name in {"", ".", "..", "/"}:
        raise BadFileError(
            f"Cannot derive a safe local file name from the remote path {path!r}: it names no file."
        )
    match = _EXTENSION.search(name)
    extension = match.group(0) if match and match.start() > 0 else ""
    stem = _UNSAFE_RUN.sub("_", name[: len(name) - len(extension)]).strip("._-")
    digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:_LOCAL_HASH_CHARS]
    return f"{stem[:_LOCAL_STEM_CHARS] or 'file'}-{digest}{extension}"


def shown_name(name: str) -> str:
    """Return `name` fit for a message: bytes that were not UTF-8 as `\\xff`, control characters escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(repr(char)[1:-1] if _has_control_chars(char) else char for char in text)


def move_folder_problem(folder: str) -> str | None:
    """Say why `folder` cannot be an outbound or failed folder, or None when it can.

    Checked before any I/O: empty, control characters, a relative path that leads out of the root, or
    the claim folder. An absolute path passes here; it is checked against the root at run start.
    """
    if not folder.strip():
        return "the folder is empty; give a folder inside the connection's root folder"
    if _has_control_chars(folder):
        return f"the folder {folder!r} contains a control character; fix it"
    normalized = posixpath.normpath(folder)
    if normalized == ".." or normalized.startswith("../"):
        return (
            f"the folder {folder!r} leads out of the connection's root folder; give a folder inside it "
            "(relative to the root folder)"
        )
    if CLAIM_DIR in normalized.split("/"):
        return f"the folder {folder!r} is inside a {CLAIM_DIR!r} folder, where the job keeps the files it imports"
    return None


def candidate_names(name: str, when: datetime, *, limit: int = MAX_NAME_TRIES) -> Iterator[str]:
    """Yield `name`, then `stem.<UTC time>.ext`, then `stem.<UTC time>-2.ext`... up to `limit` names."""
    yield name
    stem, extension = posixpath.splitext(name)
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    yield f"{stem}.{stamp}{extension}"
    for number in range(2, limit):
        yield f"{stem}.{stamp}-{number}{extension}"
