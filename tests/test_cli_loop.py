"""The command line over the whole loop, on a tiny model and a warehouse filled by the flows."""
from __future__ import annotations

import duckdb
import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from flow_fixtures import task_toml, write_batch
from calscore.cli import app

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


def count(task_dir, sql: str):
    con = duckdb.connect(str(task_dir / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_loop_from_the_command_line(tmp_path, tiny_model):
    task = task_toml(tmp_path, tiny_model, min_labels=20, refit_after=10_000)
    _, truth = write_batch(tmp_path, "night-001", 200)
    t = str(task)

    assert "rows scored: 200" in run("score", "--task", t)
    status = run("status", "--task", t)
    assert "batches: 1 done, 0 pending, 0 failed (1 file(s)" in status and "predictions for this task_version: 200" in status

    out = run("labels", "sample", "--task", t, "--n", "150", "--out", str(tmp_path / "to-label.csv"), "--seed", "3")
    sample = pacsv.read_csv(tmp_path / "to-label.csv")
    assert sample.num_rows == 150 and "150 rows sampled" in out
    probs = sample["inclusion_prob"].to_pylist()
    assert all(0 < p <= 1 for p in probs) and count(tmp_path, "SELECT count(*) FROM audit_samples") == [(150,)]

    ids = sample["id"].to_pylist()
    labeled = sample.select(["id"]).append_column("label", [[truth[i] for i in ids]])
    pacsv.write_csv(labeled, tmp_path / "labeled.csv")
    out = run("labels", "import", "--task", t, str(tmp_path / "labeled.csv"))
    assert "150 new label(s)" in out
    # the audit sample's inclusion probabilities travel with the labels
    assert count(tmp_path, "SELECT count(*) FROM labels WHERE inclusion_prob IS NOT NULL") == [(150,)]

    out = run("recalibrate", "--task", t)
    assert "decision:" in out and "winner: **" in out and "out-of-fold predictions of all" in out
    [(version,)] = count(tmp_path, "SELECT version FROM calibrators WHERE status = 'champion'")
    listing = run("calibrators", "list", "--task", t)
    assert version in listing and "promoted" in listing
    assert "no previous champion" in run("calibrators", "rollback", "--task", t, "--reason", "test", code=2)
    exported = tmp_path / "cal.json"
    run("calibrators", "export", version, "--task", t, "--out", str(exported))
    exported.write_text(exported.read_text().replace('"n_labels": ', '"n_labels": 1'))  # tampered
    assert "edited after it was written" in run("calibrators", "import", str(exported), "--task", t, code=2)

    explained = run("explain", "--task", t, "It was warm and funny")
    assert "calibrated:" in explained and version in explained

    assert "threshold" in run("thresholds", "--task", t, "--target", "0.6").lower()
    report = run("report", "--task", t, "--out", str(tmp_path / "report")).strip().splitlines()[-1]
    html = open(report, encoding="utf-8").read()
    assert "data:image/png;base64," in html and version in html


def test_labels_from_an_analysts_table(tmp_path, tiny_model):
    task = task_toml(tmp_path, tiny_model, refit_after=10_000)
    _, truth = write_batch(tmp_path, "night-001", 12)
    run("score", "--task", str(task))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE my_labels AS SELECT * FROM (VALUES ('r00001', 'positive'), ('r00002', 'nope')) t(id, label)")
    con.close()
    out = run("labels", "import", "--task", str(task), "--from-table", "my_labels")
    assert "1 new label(s)" in out and "'nope'" in out
    assert "not a valid table name" in run("labels", "import", "--task", str(task), "--from-table", "x; DROP TABLE labels", code=2)


def test_rescore_is_explicit_after_a_prompt_change(tmp_path, tiny_model):
    task = task_toml(tmp_path, tiny_model)
    write_batch(tmp_path, "night-001", 30)
    run("score", "--task", str(task))
    task.write_text(task.read_text().replace("Sentiment:", "Overall sentiment:"))  # a new task_version

    assert "rows scored: 0" in run("score", "--task", str(task))  # nothing is rescored silently
    out = run("rescore", "--task", str(task), "--since", "2000-01-01")
    assert "rows scored: 30" in out
    assert count(tmp_path, "SELECT count(DISTINCT task_version), count(*) FROM predictions") == [(2, 60)]
    assert "rows scored: 0" in run("rescore", "--task", str(task), "--since", "2000-01-01")  # and only once
