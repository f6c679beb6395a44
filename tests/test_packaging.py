"""What ships: the wheel carries every package under the calscore namespace, the SQL and the demo task."""
from __future__ import annotations

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
        "calscore/cli/__init__.py",
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
    packages = {"/".join((installed, *init.parent.relative_to(REPO / folder).parts))
                for folder, installed in _INSTALLED.items() for init in (REPO / folder).rglob("__init__.py")}
    shipped = {n.rsplit("/", 1)[0] for n in names}
    assert packages <= shipped, f"list these in pyproject.toml's packages: {sorted(packages - shipped)}"
    assert {n.split("/")[0] for n in names if not n.startswith("calscore-")} == {"calscore"}
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "calscore = calscore.cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()


# repo folder -> where it is installed (pyproject.toml: [tool.setuptools] package-dir)
_INSTALLED = {"calscore": "calscore", "jobs": "calscore/jobs", "flows": "calscore/flows",
              "calibration_store": "calscore/calibration_store", "sql": "calscore/sql", "infra": "calscore/infra"}
