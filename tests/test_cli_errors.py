"""Errors raised on purpose are one line and a non-zero exit, before Prefect starts where they can be;
tracebacks only with --debug; `--version`; library noise stays off the console."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from calscore import __version__
from calscore.cli import app
from flow_fixtures import task_toml, write_batch

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


def test_answers_that_share_a_first_token_are_a_task_file_error_before_the_lock(tmp_path, tiny_model):
    """Only the tokenizer can tell that ' positively' starts with the token ' positive': that check runs with
    the others, before Prefect starts and before the run takes the lock (it failed the run after both)."""
    task = task_toml(tmp_path, tiny_model)
    task.write_text(task.read_text().replace('negative = ["negative", "Negative"]', 'negative = ["positively"]'))
    write_batch(tmp_path, "a", 5)
    for command in (["score"], ["rescore", "--since", "2000-01-01"]):
        result = CliRunner().invoke(app, [*command, "--task", str(task)])
        assert result.exit_code == 2, result.output
        [line] = result.output.splitlines()
        assert line.startswith(f"{task}: labels: cannot resolve the answer variants: token ' positive'"), line
        assert "temporary server" not in result.output
    assert not (tmp_path / "w.duckdb").exists()  # no run was recorded, no lock taken


def test_a_warehouse_file_duckdb_cannot_open_is_one_line_before_any_flow(tmp_path, tiny_model):
    task = task_toml(tmp_path, tiny_model)
    (tmp_path / "w.duckdb").write_text("not a DuckDB file\n" * 100)
    for command in (["score"], ["status"], ["init"]):
        result = CliRunner().invoke(app, [*command, "--task", str(task)])
        assert result.exit_code == 2, (command, result.output)
        [line] = result.output.splitlines()
        assert line.startswith(f"{task}: warehouse.path: {tmp_path / 'w.duckdb'} cannot be opened: "), line
        assert "not a valid DuckDB database file" in line


def test_a_label_file_with_an_absurd_cell_is_refused_naming_the_row_and_the_limit(tmp_path, tiny_model):
    """A 100 MB cell: pyarrow's CSV reader said 'straddling object straddles two block boundaries'. The file
    is refused as a whole, naming the row and the limit: valid rows are imported or nothing is."""
    from calscore.jobs.labels.importing import MAX_CELL_CHARS

    task = task_toml(tmp_path, tiny_model)
    assert CliRunner().invoke(app, ["init", "--task", str(task)]).exit_code == 0
    huge = "x" * 100_000_000
    (tmp_path / "labels.csv").write_text(f"id,label\nr0,positive\nr1,{huge}\nr2,negative\n")
    pq.write_table(pa.table({"id": ["r0", huge, "r2"], "label": ["positive", "negative", "negative"]}),
                   tmp_path / "labels.parquet")
    # rows are counted from 0, as in the import's report of rejected rows; a CSV's line is named too
    for name, row in (("labels.csv", "row 1 (line 3)"), ("labels.parquet", "row 1")):
        result = CliRunner().invoke(app, ["labels", "import", "--task", str(task), str(tmp_path / name)])
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (f"{tmp_path / name}: {row} has a cell longer than {MAX_CELL_CHARS:,} "
                                         "characters, the limit per cell: nothing was imported")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM labels").fetchall() == [(0,)]
