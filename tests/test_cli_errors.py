"""Errors raised on purpose are one line and a non-zero exit, before Prefect starts where they can be;
tracebacks only with --debug; `--version`; library noise stays off the console."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from calscore import __version__
from calscore.cli import app
from flow_fixtures import task_toml

REPO = Path(__file__).resolve().parents[1]


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"calscore {__version__}"


def test_a_missing_model_folder_is_a_task_file_error_before_prefect_starts(tmp_path):
    task = task_toml(tmp_path, tmp_path / "no-such-model")
    for command in (["score"], ["status"], ["labels", "import", str(tmp_path / "l.csv")], ["recalibrate"]):
        result = CliRunner().invoke(app, [*command, "--task", str(task)])
        assert result.exit_code == 2, (command, result.output)
        assert f"{task}: model: model folder not found: {tmp_path / 'no-such-model'}" in result.output
        assert "Traceback" not in result.output and "temporary server" not in result.output


def test_an_unusable_warehouse_path_names_the_field(tmp_path, tiny_model):
    task = task_toml(tmp_path, tiny_model)
    (tmp_path / "not-a-folder").write_text("x")
    task.write_text(task.read_text().replace('path = "w.duckdb"', 'path = "not-a-folder/w.duckdb"'))
    result = CliRunner().invoke(app, ["status", "--task", str(task)])
    assert result.exit_code == 2
    assert "warehouse.path:" in result.output and "is a file, not a folder" in result.output


def test_manual_commands_need_no_prefect_server_without_an_api(tmp_path, tiny_model):
    """labels import and recalibrate answer at once when no Prefect API is configured (no temporary server)."""
    task = task_toml(tmp_path, tiny_model, min_labels=10, refit_after=1)
    pq.write_table(pa.table({"id": ["a"], "label": ["positive"]}), tmp_path / "labels.parquet")
    outputs = []
    for args in (["labels", "import", "--task", str(task), str(tmp_path / "labels.parquet")],
                 ["recalibrate", "--task", str(task)]):
        done = subprocess.run([sys.executable, "-m", "calscore.cli", *args], capture_output=True, text=True, cwd=REPO,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "temporary server" not in done.stdout + done.stderr
        outputs.append(done.stdout)
    # the import reached refit_after_new_labels (1): it started the recalibration itself, in-process
    assert "1 new label(s)" in outputs[0] and "recalibration started by this import: skipped" in outputs[0]
    assert "decision: skipped: 0 labeled rows" in outputs[1]  # the label's id has no prediction yet


def test_a_bad_label_file_is_one_line_and_debug_shows_the_traceback(tmp_path, tiny_model):
    task = task_toml(tmp_path, tiny_model)
    pq.write_table(pa.table({"row": ["a"], "label": ["positive"]}), tmp_path / "labels.parquet")
    # a real process, as an operator runs it: the flow's error reaches the console once, without a traceback
    run = [sys.executable, "-m", "calscore.cli"]
    args = ["labels", "import", "--task", str(task), str(tmp_path / "labels.parquet")]
    plain = subprocess.run([*run, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert plain.returncode == 2, plain.stderr
    assert "missing column(s) ['id']" in plain.stderr and "Traceback" not in plain.stderr + plain.stdout
    debug = subprocess.run([*run, "--debug", *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "LabelFileError" in debug.stderr


def test_explain_keeps_library_warnings_off_the_console(tmp_path, tiny_model):
    task = task_toml(tmp_path, tiny_model)
    result = subprocess.run([sys.executable, "-m", "calscore.cli", "explain", "--task", str(task), "a warm film"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "Loading weights" not in result.stderr, result.stderr
    assert "Top first tokens" in result.stdout
