"""What ships: the wheel carries the SQL and the demo task; calibration_store stands alone."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Not part of a build: environments, caches, outputs and VCS data (the copy keeps the build off the checkout).
_NOT_SOURCE = shutil.ignore_patterns(
    ".venv", ".git", ".cache", "var", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "bench", "tests"
)


def test_wheel_ships_sql_and_task_files(tmp_path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    out = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-q",
         "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = out.glob("calscore-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "calscore/sql/migrations/001_core_tables.sql",
        "calscore/infra/tasks/demo.toml",
        "calscore/cli.py",
        "calscore/jobs/demo/data.py",
        "calscore/calibration_store/__init__.py",
        "calscore/flows/__init__.py",
    }
    assert expected <= names, sorted(expected - names)
    shipped_sql = {n for n in names if n.startswith("calscore/sql/") and n.endswith(".sql")}
    in_repo = {"calscore/" + p.relative_to(REPO).as_posix() for p in (REPO / "sql").rglob("*.sql")}
    assert shipped_sql == in_repo, "every SQL file in sql/ (migrations, views, queries) must ship"
    assert not any(n.startswith("tests/") for n in names)
    # every package folder of the checkout ships, under the calscore namespace only
    packages = {"calscore/" + p.parent.relative_to(REPO).as_posix() for folder in _INSTALLED
                for p in (REPO / folder).rglob("__init__.py")}
    packages = {p.removeprefix("calscore/calscore") or "calscore" for p in packages}
    assert packages <= {n.rsplit("/", 1)[0] for n in names}, sorted(packages - {n.rsplit("/", 1)[0] for n in names})
    assert {n.split("/")[0] for n in names if not n.startswith("calscore-")} == {"calscore"}
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "calscore = calscore.cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()


_INSTALLED = ("calscore", "jobs", "flows", "calibration_store", "sql", "infra")


def _imported_modules(source: str, depth: int) -> list[tuple[int, str]]:
    """(line, module) for every import in `source`, a module `depth` folders below the repo root.

    A relative import that climbs out of the top-level package is reported as '..<module>'.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
            elif node.level > depth:
                found.append((node.lineno, ".." + (node.module or "")))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
            "import_module", "__import__"
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return sorted(found)


def _forbidden(source: str, depth: int) -> list[tuple[int, str]]:
    return [
        (line, module)
        for line, module in _imported_modules(source, depth)
        if module.split(".")[:2] in (["calscore", "jobs"], ["calscore", "flows"], ["calscore", "infra"], ["calscore", "cli"])
        or module.split(".")[0] in {"jobs", "flows", "infra"} or module.startswith("..")
    ]


def test_calibration_store_imports_nothing_from_jobs_or_flows() -> None:
    files = sorted((REPO / "calibration_store").rglob("*.py"))
    assert files
    offending = [
        f"{p.relative_to(REPO)}:{line} imports {module}"
        for p in files
        for line, module in _forbidden(p.read_text(encoding="utf-8"), len(p.relative_to(REPO).parts) - 1)
    ]
    assert not offending, "\n".join(offending)


def test_the_import_scan_catches_every_form() -> None:
    source = (
        "import numpy\n"
        "from calibration_store import metrics\n"
        "from . import base\n"
        "from jobs.spec import load_spec\n"
        "import flows.nightly as n\n"
        "from .. import jobs\n"
        "def f():\n"
        "    import importlib\n"
        "    return importlib.import_module('calscore.jobs.warehouse.connection')\n"
    )
    assert _forbidden(source, depth=1) == [(4, "calscore.jobs.spec"), (5, "calscore.flows.nightly"), (6, ".."), (9, "calscore.jobs.warehouse.connection")]
