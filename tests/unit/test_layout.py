"""The folder tree is the architecture (README, "Layout"): imports cross packages only through public names, one way.

Read from the source with `ast`, nothing is imported. The units are the top-level packages (`blocks`,
`tasks`, `flows`, `deployments`, and `demo` on top of them) and, inside `tasks/`, each package
(`tasks.files`, `tasks.csv`, `tasks.api`, `tasks.hub`, `tasks.run`) and each top-level module
(`tasks.errors`, `tasks.shell`, ...). Tests and `bench/` (which times internals) may import anything.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("blocks", "tasks", "flows", "deployments", "demo")
# Each layer may import the layers before it, never one after it (demo sits on top of all).
LAYERS = ("blocks", "tasks", "flows", "deployments")
SOURCES = ("tasks.files", "tasks.csv", "tasks.api")
# The one module that defines each of these (README, "Layout"): (what, module, pattern in its source).
ONE_PLACE = [
    (
        "HTTP request retries (tenacity)",
        "tasks/api/http/retry.py",
        re.compile(r"^\s*(from|import) tenacity\b", re.M),
    ),
    ("Prefect task retries (idempotent FTP steps)", "tasks/files/tasks.py", re.compile(r"\bretries\s*=")),
    (
        "SFTP login",
        "tasks/files/paramiko_backend.py",
        re.compile(r"\.auth_(password|publickey)\(|Transport\("),
    ),
    (
        "merge SQL",
        "tasks/hub/staging.py",
        re.compile(r"\b(ON CONFLICT|INSERT INTO|MERGE INTO)\b|\bUPDATE \{"),
    ),
    ("reject codes", "tasks/hub/contract.py", re.compile(r"[\"'](F|CSV)-E-\d{3}[\"']")),
    # One masking function for every output: no second `.replace(secret, "***")` anywhere.
    ("secret masking", "blocks/masking.py", re.compile(r"[\"']\*\*\*[\"']")),
]


@dataclass(frozen=True)
class Import:
    """One `from module import name` (or `import module`, with name None) at `where`."""

    where: str
    importer: str
    module: str
    name: str | None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The package `module` belongs to for these rules: `tasks.X` inside tasks/, else its top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "tasks" and len(parts) > 1 else parts[0]


def source_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for top in CHECKED for p in (root / top).rglob("*.py"))


def imports(path: Path, root: Path = ROOT) -> list[Import]:
    importer = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [Import(where, importer, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [Import(where, importer, alias.name, None) for alias in node.names]
    return [i for i in found if i.module.split(".")[0] in CHECKED]


@cache
def public_names(unit_name: str, root: Path = ROOT) -> frozenset[str] | None:
    """The unit's `__all__` (its package `__init__.py`, or the module itself), or None when it has none."""
    base = root / unit_name.replace(".", "/")
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    return None


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks the layout's rules, as `where: what`."""
    found = []
    for path in source_files(root):
        for imp in imports(path, root):
            src, dst = unit(imp.importer), unit(imp.module)
            if src == dst:
                continue
            top_src, top_dst = src.split(".")[0], dst.split(".")[0]
            if top_src in LAYERS and LAYERS.index(top_dst) > LAYERS.index(top_src):
                found.append(f"{imp.where}: {top_src} imports {imp.module}, against {' <- '.join(LAYERS)}")
            if src == "tasks.hub" and dst in SOURCES:
                found.append(f"{imp.where}: tasks.hub imports {imp.module}: the hub knows no source")
            if imp.name is None:
                if imp.module != dst and dst.startswith("tasks."):
                    found.append(
                        f"{imp.where}: `import {imp.module}` reaches inside {dst}; import its public names"
                    )
                continue
            if imp.name.startswith("_"):
                found.append(f"{imp.where}: {imp.name} is private to {dst}")
            elif dst.startswith("tasks.") or dst == "blocks":
                names = public_names(dst, root)
                if names is None:
                    found.append(f"{imp.where}: {dst} has no __all__")
                elif imp.name not in names:
                    found.append(f"{imp.where}: {imp.name} is not in {dst}.__all__")
    return found


def test_every_import_across_packages_uses_public_names_and_runs_one_way() -> None:
    found = violations()
    assert not found, "imports against the layout (README, Layout):\n" + "\n".join(found)


def test_every_package_of_tasks_declares_its_public_names() -> None:
    units = {unit(module_name(p)) for p in (ROOT / "tasks").rglob("*.py")} - {"tasks"}
    missing = sorted(u for u in units if public_names(u) is None)
    assert missing == []
    for name in sorted(units):
        base = ROOT / name.replace(".", "/")
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        defined = {n.id for node in ast.walk(ast.parse(path.read_text())) for n in _bound(node)}
        assert sorted((public_names(name) or frozenset()) - defined) == [], (
            f"{name}.__all__ names what it lacks"
        )


def _bound(node: ast.AST) -> list[ast.Name]:
    if isinstance(node, ast.ImportFrom):
        return [ast.Name(id=a.asname or a.name) for a in node.names]
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return [ast.Name(id=node.name)]
    if isinstance(node, ast.Assign):
        return [n for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target]
    return []


@pytest.mark.parametrize(("what", "home", "pattern"), ONE_PLACE, ids=[w for w, _, _ in ONE_PLACE])
def test_each_definition_the_readme_names_lives_only_in_its_module(
    what: str, home: str, pattern: re.Pattern[str]
) -> None:
    where = sorted(str(p.relative_to(ROOT)) for p in source_files() if pattern.search(p.read_text()))
    assert where == [home], f"{what} must be defined only in {home}"
    assert f"`{home}`" in (ROOT / "README.md").read_text(), f"README's Layout names {home} for {what}"


def test_a_planted_violation_is_caught(tmp_path: Path) -> None:
    """The checker itself: a hub module importing a source, and a private name across packages, both fail."""
    for name, text in {
        "tasks/__init__.py": "",
        "tasks/csv/__init__.py": "__all__ = ['CsvFormat']\nfrom tasks.csv.reader import CsvFormat\n",
        "tasks/csv/reader.py": "class CsvFormat: ...\ndef _private(): ...\n",
        "tasks/hub/__init__.py": "__all__ = []\n",
        "tasks/hub/load.py": "from tasks.csv.reader import CsvFormat, _private\n",
        "blocks/__init__.py": "__all__ = []\nfrom flows.job import Job\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = violations(tmp_path)
    assert any("tasks.hub imports tasks.csv.reader" in v for v in found)
    assert any("_private is private to tasks.csv" in v for v in found)
    assert any(
        "blocks imports flows.job, against blocks <- tasks <- flows <- deployments" in v for v in found
    )
