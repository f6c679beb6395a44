"""The command line: every command explains itself with an example, is documented, and `init` works."""
from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from calscore.cli import app
from calscore.jobs.spec import load_spec
import doc_pages

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


ROOT = typer.main.get_command(app)
ALL_COMMANDS = doc_pages.cli_reference.command_paths(ROOT)  # the walk the docs' CLI reference makes
TOP_LEVEL = [p[0] for p in ALL_COMMANDS if len(p) == 1]


def test_the_tree_was_walked() -> None:
    assert {"init", "prepare-demo"} <= set(TOP_LEVEL)


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "calscore")
def test_every_command_answers_help_with_an_example(path: tuple[str, ...], flag: str) -> None:
    result = runner.invoke(app, [*path, flag])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if path:  # the top level lists its commands; each command shows how to call it
        assert "Example:" in result.output, f"`calscore {' '.join(path)} --help` has no 'Example:'"
        example = result.output.split("Example:", 1)[1]
        assert re.search(rf"calscore\s+{re.escape(path[0])}", example), result.output


def test_every_top_level_command_is_described_in_the_documentation() -> None:
    """Described by hand on some page (the CLI reference's generated sections are not in the pages' source)."""
    pages = doc_pages.text()
    missing = [name for name in TOP_LEVEL if not re.search(rf"calscore {re.escape(name)}\b", pages)]
    assert not missing, f"commands the documentation does not describe: {missing}"


# --- init -------------------------------------------------------------------------------------
def _demo_task_in(tmp_path: Path) -> Path:
    """A copy of the demo task whose warehouse and input live in tmp_path."""
    text = (REPO / "infra" / "tasks" / "demo.toml").read_text(encoding="utf-8")
    text, n_wh = re.subn(r'(?m)^(\[warehouse\]\s*\npath\s*=\s*)"[^"]*"', r'\1"var/calscore.duckdb"', text)
    text, n_in = re.subn(r'(?m)^location\s*=\s*"[^"]*"', 'location = "var/batches"', text)
    assert (n_wh, n_in) == (1, 1), "the demo task's [warehouse] path or [input] location moved; update this test"
    path = tmp_path / "infra-task.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_init_creates_the_warehouse_and_is_safe_to_repeat(tmp_path) -> None:
    task = _demo_task_in(tmp_path)
    spec = load_spec(task)
    assert spec.warehouse.path == tmp_path / "var" / "calscore.duckdb"

    first = runner.invoke(app, ["init", "--task", str(task)])
    assert first.exit_code == 0, first.output
    assert spec.warehouse.path.is_file()
    assert f"task_version {spec.task_version}" in first.output
    version = int(re.search(r"schema version (\d+)", first.output).group(1))

    second = runner.invoke(app, ["init", "-t", str(task)])
    assert second.exit_code == 0, second.output
    assert f"schema version {version}" in second.output

    con = duckdb.connect(str(spec.warehouse.path), read_only=True)
    try:
        assert con.execute("SELECT max(version), count(*) FROM schema_migrations").fetchone() == (version, version)
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    finally:
        con.close()
    assert not (REPO / "var" / "calscore.duckdb").exists()


def test_init_with_a_broken_task_exits_2_naming_the_problem(tmp_path) -> None:
    task = _demo_task_in(tmp_path)
    task.write_text(task.read_text().replace('dtype = "auto"', 'dtype = "float64"'))
    result = runner.invoke(app, ["init", "--task", str(task)])
    assert result.exit_code == 2
    assert str(task) in result.output and "model.dtype" in result.output
    assert not (tmp_path / "var" / "calscore.duckdb").exists()

    missing = runner.invoke(app, ["init", "--task", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2
    assert "task file not found" in missing.output
