"""What an operator sees: failed batches fail the run (after the good ones are written) and stay failed,
a poison file fails alone, a missing input folder is an error, an empty one a warning, and a moved
input folder is not scored again. Real Prefect (test harness), real DuckDB, the lookup backend."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli_processes import AS_AN_OPERATOR, calscore, finish
from flow_fixtures import task_toml, texts, write_batch, write_lookup_scores

pytestmark = pytest.mark.usefixtures("prefect_harness")


def q(task_dir: Path, sql: str, params=None):
    with duckdb.connect(str(task_dir / "w.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def task(tmp_path) -> Path:
    """A lookup-backed task that can score every text `write_batch` makes for rows 0..399."""
    _, body, truth = texts(400)
    return task_toml(tmp_path, write_lookup_scores(tmp_path / "scores.parquet", body, truth), backend="lookup")


def corrupt_data_page(path: Path) -> None:
    """Keep the footer (the schema reads fine), break the first page header (the data does not)."""
    data = bytearray(path.read_bytes())
    data[4:40] = b"\xff" * 36
    path.write_bytes(bytes(data))


def status_line(task: Path) -> str:
    from calscore.jobs.reports.status import task_status
    from calscore.jobs.spec import load_spec

    return task_status(load_spec(task))


def test_failed_batches_fail_the_run_after_the_good_ones_and_stay_failed(tmp_path, task):
    from calscore.flows.failures import BatchesFailed
    from calscore.flows.nightly import nightly_scoring

    write_batch(tmp_path, "a-good", 10)
    pq.write_table(pa.table({"id": ["x1"], "body": ["no text column"]}), tmp_path / "batches" / "b-bad.parquet")
    write_batch(tmp_path, "c-poison", 10, start=10)
    corrupt_data_page(tmp_path / "batches" / "c-poison.parquet")
    write_batch(tmp_path, "d-good", 10, start=20)

    state = nightly_scoring(str(task), return_state=True)
    assert state.is_failed()
    assert "2 batch(es) failed, 2 written" in state.message and "b-bad.parquet" in state.message
    with pytest.raises(BatchesFailed) as raised:
        state.result()
    summary = raised.value.summary
    assert summary["batches_done"] == 2 and summary["rows_scored"] == 20
    errors = {f["batch"]: f["error"] for f in summary["batches_failed"]}
    assert "missing text column 'text'" in errors["b-bad.parquet"]
    # corrupt in plain words, then the library's own message, on one line (pyarrow's spans two, with a control byte)
    assert errors["c-poison.parquet"].startswith(
        "c-poison.parquet: the file is corrupt: its data cannot be decoded (Parquet library: Couldn't deserialize")
    assert "page header" in errors["c-poison.parquet"] and errors["c-poison.parquet"].isprintable()
    assert "failed batch c-poison.parquet" in summary["text"] and "#" not in summary["text"]  # plain text
    assert q(tmp_path, "SELECT uri, status FROM batches ORDER BY uri") == [
        ("a-good.parquet", "done"), ("b-bad.parquet", "failed"), ("c-poison.parquet", "failed"), ("d-good.parquet", "done")]
    assert q(tmp_path, "SELECT status FROM runs") == [("failed",)]
    assert "batches: 2 done, 0 pending, 2 failed" in status_line(task)  # each file counted once

    # later nights do not try them again: nothing to do, a completed run
    again = nightly_scoring(str(task))
    assert again["batches_done"] == 0 and again["batches_failed"] == []
    assert q(tmp_path, "SELECT count(*) FROM batches WHERE status = 'failed'") == [(2,)]

    # fixed content is a new batch; an operator's retry makes the other pending again
    write_batch(tmp_path, "b-bad", 5, start=30)
    from calscore.cli import app

    retried = CliRunner().invoke(app, ["batches", "retry", "--task", str(task), "c-poison.parquet"])
    assert retried.exit_code == 0 and "c-poison.parquet" in retried.output
    assert "batches: 2 done, 2 pending, 0 failed" in status_line(task)  # b-bad's new content is a new batch
    with pytest.raises(BatchesFailed) as raised:
        nightly_scoring(str(task))
    assert raised.value.summary["batches_done"] == 1  # the fixed b-bad
    assert [f["batch"] for f in raised.value.summary["batches_failed"]] == ["c-poison.parquet"]  # tried again, still broken


def test_an_unreadable_file_fails_alone_and_the_other_batches_are_scored(tmp_path, task):
    """The operator's account cannot read one of three files: that batch fails with a one-line reason, the
    other two are written (discovery hashed them all, and did not stop at the one it could not open)."""
    write_batch(tmp_path, "a", 10)
    unreadable, _ = write_batch(tmp_path, "b", 10, start=10)
    write_batch(tmp_path, "c", 10, start=20)
    unreadable.chmod(0)

    code, out = finish(calscore("score", "--task", str(task), prefix=AS_AN_OPERATOR))
    assert code == 4, out
    assert "Traceback" not in out and "PermissionError" not in out
    [reason] = [line for line in out.splitlines() if line.startswith("failed batch b.parquet: ")]
    assert reason.startswith("failed batch b.parquet: b.parquet: cannot be opened or read (")
    assert "Permission denied" in reason
    assert "batches written: 2, failed: 1" in out and "rows scored: 20" in out
    assert q(tmp_path, "SELECT uri, status FROM batches ORDER BY uri") == [
        ("a.parquet", "done"), ("b.parquet", "failed"), ("c.parquet", "done")]
    code, out = finish(calscore("status", "--task", str(task), prefix=AS_AN_OPERATOR))
    assert code == 0 and "batches: 2 done, 0 pending, 1 failed" in out, out
    assert "failed: b.parquet: b.parquet: cannot be opened or read (" in out


def test_the_cli_exits_4_and_prints_plain_text_when_batches_failed(tmp_path, task):
    from calscore.cli import app

    write_batch(tmp_path, "a-good", 10)
    pq.write_table(pa.table({"id": ["x1"], "body": ["no text column"]}), tmp_path / "batches" / "b-bad.parquet")
    result = CliRunner().invoke(app, ["score", "--task", str(task)])
    assert result.exit_code == 4, result.output
    assert "failed batch b-bad.parquet: b-bad.parquet: missing text column 'text'" in result.output
    assert "batches written: 1, failed: 1" in result.output and "| bucket |" not in result.output


def test_a_missing_input_folder_is_an_error_and_an_empty_one_a_warning(tmp_path, task):
    from calscore.cli import app
    from calscore.flows.nightly import nightly_scoring
    from calscore.jobs.batches.files import InputLocationError

    shutil.rmtree(tmp_path / "batches")
    with pytest.raises(InputLocationError, match=r"\[input\] location .*batches.* does not exist"):
        nightly_scoring(str(task))
    result = CliRunner().invoke(app, ["score", "--task", str(task)])
    # one line on stderr (tests/test_cli_errors.py checks a real process prints no traceback)
    assert result.exit_code == 1 and result.output.strip().splitlines()[-1].startswith("[input] location")

    (tmp_path / "batches").mkdir()
    write_batch(tmp_path, "n1", 5)
    nightly_scoring(str(task))
    (tmp_path / "batches" / "n1.parquet").unlink()
    empty = nightly_scoring(str(task))
    assert empty["warnings"] == [f"no Parquet files in [input] location {tmp_path / 'batches'}"]
    assert "warning: no Parquet files" in empty["text"]
    assert q(tmp_path, "SELECT status FROM runs ORDER BY started_at DESC LIMIT 1") == [("completed_with_warnings",)]
    write_batch(tmp_path, "n1", 5)  # back, unchanged: nothing new
    nightly_scoring(str(task))
    assert "2 run(s) since found nothing new" in status_line(task)


def test_a_batch_without_its_segment_column_is_scored_with_a_warning(tmp_path, task):
    from calscore.flows.nightly import nightly_scoring

    write_batch(tmp_path, "a-segmented", 10)
    ids, body, _ = texts(10, start=10)
    pq.write_table(pa.table({"id": ids, "text": body}), tmp_path / "batches" / "b-no-segment.parquet")

    state = nightly_scoring(str(task), return_state=True)
    assert state.is_completed() and state.name == "Completed with warnings"
    summary = state.result()
    assert summary["rows_scored"] == 20
    assert summary["warnings"] == ["b-no-segment.parquet: no segment column 'category' ([input] segment_column); "
                                   "its rows have no segment"]
    assert "b-no-segment.parquet: no segment column" in summary["text"]
    assert q(tmp_path, "SELECT batch_uri, count(segment) FROM predictions GROUP BY ALL ORDER BY 1") == [
        ("a-segmented.parquet", 10), ("b-no-segment.parquet", 0)]
    assert q(tmp_path, "SELECT status FROM runs") == [("completed_with_warnings",)]


def test_a_copied_input_folder_is_not_scored_again(tmp_path, task):
    from calscore.flows.nightly import nightly_scoring

    write_batch(tmp_path, "n1", 10)
    write_batch(tmp_path, "n2", 10, start=10)
    assert nightly_scoring(str(task))["batches_done"] == 2
    shutil.copytree(tmp_path / "batches", tmp_path / "mounted-elsewhere")
    task.write_text(task.read_text().replace('location = "batches"', 'location = "mounted-elsewhere"'))
    again = nightly_scoring(str(task))
    assert again["batches_done"] == 0 and again["rows_quarantined"] == 0
    assert q(tmp_path, "SELECT count(*) FROM quarantine") == [(0,)]
