"""Analysts never block the night: they read `<warehouse>-read.duckdb`, which every writing run republishes by a
copy and an atomic rename; a session kept open across a whole night's scoring, label import and recalibration
does not stop them, and keeps its snapshot. The copy opens in the DuckDB CLI analysts install (duckdb-cli
1.5.6), and every `duckdb` command the documentation shows runs through it."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import doc_pages
from flow_fixtures import task_toml, write_batch
from report_fixtures import fill_report_warehouse

REPO = Path(__file__).resolve().parents[1]
DEMO_COPY = "var/demo/calscore-read.duckdb"


@pytest.mark.usefixtures("prefect_harness")
def test_a_session_held_open_on_the_read_copy_across_a_night_never_stops_it(tmp_path, tiny_model):
    from calscore.flows.nightly import nightly_scoring
    from calscore.jobs.calibrators.recalibrate import run_recalibration
    from calscore.jobs.labels.importing import import_labels
    from calscore.jobs.spec import load_spec
    from calscore.jobs.warehouse.read_copy import read_copy_path

    task = task_toml(tmp_path, tiny_model, min_labels=20, refit_after=10_000)
    _, first = write_batch(tmp_path, "n1", 60)
    nightly_scoring(str(task))
    spec = load_spec(task)
    copy = read_copy_path(spec.warehouse.path)
    assert copy == tmp_path / "w-read.duckdb"
    session = duckdb.connect(str(copy), read_only=True)  # a notebook that stays open all night
    try:
        assert session.execute("select count(*) from current_decisions").fetchone()[0] == 60
        _, second = write_batch(tmp_path, "n2", 60, start=60)
        assert nightly_scoring(str(task))["rows_scored"] == 60
        truth = {**first, **second}
        import_labels(spec, pa.table({"id": list(truth), "label": list(truth.values())}), "test")
        result = run_recalibration(spec)
        assert result["n_labels"] == 120
        # the open session still reads the snapshot it opened
        assert session.execute("select count(*) from current_decisions").fetchone()[0] == 60
        assert session.execute("select count(*) from labels").fetchone()[0] == 0
    finally:
        session.close()
    with duckdb.connect(str(copy), read_only=True) as fresh:  # the next session sees the night
        assert fresh.execute("select count(*), count(distinct night) from current_decisions").fetchone() == (120, 1)
        assert fresh.execute("select count(*) from labels").fetchone()[0] == 120
        assert fresh.execute("select count(*) from runs where kind = 'recalibrate'").fetchone()[0] == 1


def documented_cli_commands() -> list[str]:
    """The `duckdb -readonly ...` lines the documentation shows analysts (docs/warehouse/index.md)."""
    lines = [ln.strip() for ln in doc_pages.text().splitlines()]
    commands = [ln for ln in lines if ln.startswith("duckdb -readonly ")]
    assert len(commands) >= 3 and all(DEMO_COPY in c for c in commands), commands
    return commands


@pytest.fixture(scope="module")
def read_copy(tmp_path_factory) -> Path:
    from calscore.jobs.warehouse.read_copy import publish_read_copy

    path = tmp_path_factory.mktemp("cli") / "calscore.duckdb"
    fill_report_warehouse(path)
    return publish_read_copy(path)


@pytest.mark.parametrize("command", documented_cli_commands())
def test_every_documented_duckdb_command_runs_in_the_cli_analysts_install(read_copy, command):
    cli = Path(sys.executable).parent / "duckdb"
    assert cli.is_file(), "duckdb-cli is in the test extra: `make setup` installs it"
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v1.5.6")
    done = subprocess.run(["bash", "-c", f"{cli} {command.removeprefix('duckdb ').replace(DEMO_COPY, str(read_copy))}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Error" not in done.stderr, done.stderr
    assert re.search(r"│\s*\w+", done.stdout), done.stdout  # a table with a header came back
