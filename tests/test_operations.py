"""What an operator sees: failed batches fail the run (after the good ones are written) and stay failed,
a poison file fails alone, a missing input folder is an error, an empty one a warning, and a moved
input folder is not scored again. Real Prefect (test harness), real DuckDB, the lookup backend."""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli_processes import AS_AN_OPERATOR, calscore, finish, wait_for_line
from flow_fixtures import task_toml, texts, write_batch, write_lookup_scores

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.minutes(2.4)]


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

    # later nights do not try them again, and say that they stay failed and how to retry them
    again = nightly_scoring(str(task))
    assert again["batches_done"] == 0 and again["batches_failed"] == []
    assert again["warnings"] == ["2 batch(es) failed on an earlier night and stay failed until retried: b-bad.parquet, "
                                 f"c-poison.parquet (why: calscore status; retry: calscore batches retry --task {task} "
                                 "--all)"]
    assert "warning: 2 batch(es) failed on an earlier night" in again["text"]
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


def test_an_unreadable_file_fails_alone_and_the_other_batches_are_scored(tmp_path, task, shared_prefect_api):
    """The operator's account cannot read one of three files: that batch fails with a one-line reason, the
    other two are written (discovery hashed them all, and did not stop at the one it could not open). The run
    uses a running Prefect server: the claim is about the files, not about starting a temporary one."""
    write_batch(tmp_path, "a", 10)
    unreadable, _ = write_batch(tmp_path, "b", 10, start=10)
    write_batch(tmp_path, "c", 10, start=20)
    unreadable.chmod(0)

    code, out = finish(calscore("score", "--task", str(task), prefix=AS_AN_OPERATOR,
                                PREFECT_API_URL=shared_prefect_api))
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


def prefect_client():
    from prefect import get_client

    return get_client(sync_client=True)


def flow_run_named(client, name: str):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    [run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    return run


def logs_of(client, flow_run_ids: list, last_line: str) -> list[str]:
    """The runs' log messages as the UI shows them, once `last_line` has reached the server (logs go in batches)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + 120
    while True:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)))
        messages = [log.message for log in logs]
        if any(last_line in message for message in messages):
            return messages
        assert time.monotonic() < deadline, f"{last_line!r} never reached the server: {messages}"
        time.sleep(0.2)


def test_the_sub_run_holding_a_failed_batch_ends_failed_and_its_artifact_keeps_one_row_per_batch(tmp_path, task):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from calscore.flows.nightly import nightly_scoring

    write_batch(tmp_path, "a-good", 10)
    pq.write_table(pa.table({"id": ["x1"], "body": ["no text column"]}), tmp_path / "batches" / "b|bad.parquet")
    state = nightly_scoring(str(task), return_state=True)
    run_id = state.result(raise_on_failure=False).summary["run_id"]
    with prefect_client() as client:
        fan_out = flow_run_named(client, run_id)
        assert fan_out.state.is_failed() and "b|bad.parquet" in fan_out.state.message
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    rows = [line for line in artifact.data.splitlines() if line.startswith("| `")]
    assert len(rows) == 1 and len(re.findall(r"(?<!\\)\|", rows[0])) == 3, rows  # two cells, the key's | escaped


def test_run_summary_tables_keep_a_multi_line_error_in_its_cell(task):
    from calscore.jobs.reports.run_summary import summary_markdown
    from calscore.jobs.spec import load_spec

    summary = {"run_id": "r", "batches_done": 0, "rows_scored": 0, "rows_quarantined": 0,
               "batches_failed": [{"batch": "a.parquet", "error": "a.parquet: first line\nsecond | line\n"}]}
    markdown = summary_markdown(load_spec(task), summary, [("auto", 0)])
    table = markdown[markdown.index("| batch | error |"):].splitlines()
    assert table[2:] == ["| `a.parquet` | a.parquet: first line second \\| line |"]


def test_an_expected_error_of_a_flow_run_reads_as_one_line_in_prefect_logs(tmp_path, task):
    """A task file with a multi-line error fails the flow run (a served run has no command line in front of it);
    Prefect logs states with repr(), which turned each line break into a literal \\n in the UI."""
    from calscore.flows.nightly import nightly_scoring
    from calscore.jobs.spec import SpecError

    task.write_text(task.read_text().replace('negative = ["negative", "Negative"]', 'negative = ["positive"]'))
    state = nightly_scoring(str(task), return_state=True)
    error = state.result(raise_on_failure=False)
    assert state.is_failed() and isinstance(error, SpecError) and "\n" in str(error)  # the command line shows lines
    with prefect_client() as client:
        messages = logs_of(client, [state.state_details.flow_run_id], "Finished in state Failed")
    assert not [m for m in messages if "\\n" in m], messages


def test_a_served_run_checks_the_answer_variants_before_the_lock(tmp_path, tiny_model):
    """Answer variants that share a first token fail the flow run before it takes the lock or records a run."""
    from calscore.flows.nightly import nightly_scoring
    from calscore.jobs.spec import SpecError

    task = task_toml(tmp_path, tiny_model)
    task.write_text(task.read_text().replace('negative = ["negative", "Negative"]', 'negative = ["positively"]'))
    write_batch(tmp_path, "a", 5)
    with pytest.raises(SpecError, match="labels: cannot resolve the answer variants: token ' positive'"):
        nightly_scoring(str(task))
    assert not (tmp_path / "w.duckdb").exists()


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


def waited_seconds(lines: list[str]) -> list[int]:
    return [int(re.search(r"waited (\d+) s", line).group(1)) for line in lines]


def test_status_on_a_busy_warehouse_says_every_10_s_who_holds_it(tmp_path, task):
    """Another process holds the warehouse read-write: `calscore status` says within a few seconds, and then
    every 10 s, which file it waits for and who holds it, until the holder lets go."""
    from calscore.jobs.warehouse.connection import writer

    with writer(tmp_path / "w.duckdb"):  # this test's process holds the file while status starts
        status = calscore("status", "--task", str(task))
        lines = [wait_for_line(status, "waiting for") for _ in range(3)]  # read while the file is still held
    code, out = finish(status)
    assert code == 0 and "batches: 0 done" in out, out
    assert all(f"{tmp_path / 'w.duckdb'}: held by pid {os.getpid()}" in line for line in lines), lines
    first, *rest = waited = waited_seconds(lines)
    assert first <= 5 and all(9 <= b - a <= 11 for a, b in zip(waited, rest)), lines


def test_waiting_for_another_runs_lock_says_every_10_s_which_run_holds_it(tmp_path, caplog):
    from calscore.jobs.warehouse.connection import writer
    from calscore.jobs.warehouse.runs import RunLocked, start_run

    warehouse = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # a live run on this host
    try:
        run_id = start_run(warehouse, "t", "tv", "score")
        with writer(warehouse) as con:
            con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [holder.pid, run_id])
        with caplog.at_level(logging.WARNING, logger="calscore"), pytest.raises(RunLocked):
            start_run(warehouse, "t", "tv", "score", wait_seconds=13)
    finally:
        holder.kill()
        holder.wait()
    lines = [r.getMessage() for r in caplog.records if r.name == "calscore.jobs.warehouse.runs"]
    assert len(lines) == 2, lines
    assert all(f"the lock of task 't': score run {run_id} (pid {holder.pid} on " in line for line in lines), lines
    assert waited_seconds(lines)[0] <= 5 and 9 <= waited_seconds(lines)[1] - waited_seconds(lines)[0] <= 11, lines


def test_a_small_batch_reports_progress_while_it_is_scored(tmp_path, tiny_model, monkeypatch):
    """Progress came once per 2,048-row part, so a smaller batch said nothing until it was done. Now a line
    (rows done, rows/s, ETA) comes every PROGRESS_EVERY seconds however long a model call takes (10 s; 0.02 s
    here, so the tiny model's batch spans several), with counts at least every few hundred rows."""
    import calscore.flows.progress as progress
    from calscore.flows.nightly import nightly_scoring

    monkeypatch.setattr(progress, "PROGRESS_EVERY", 0.02)
    task = task_toml(tmp_path, tiny_model)
    write_batch(tmp_path, "a", 1500)
    state = nightly_scoring(str(task), return_state=True)
    assert state.is_completed()
    with prefect_client() as client:
        fan_out = flow_run_named(client, state.result()["run_id"])
        messages = logs_of(client, [state.state_details.flow_run_id, fan_out.id], "batch a.parquet: 1500 scored")
    lines = [m for m in messages if m.startswith("batch a.parquet: ") and " rows/s, ETA " in m]
    done = [int(re.match(r"batch a.parquet: (\d+)/1500 rows", line).group(1)) for line in lines]
    assert len(lines) >= 3 and done[-1] == 1500, lines
    assert sorted(done) == done and any(0 < n < 1500 for n in done), lines  # counts moved during the batch


def test_an_unreachable_ray_address_fails_the_run_within_its_deadline_and_releases_the_lock(tmp_path, task):
    """Nothing listens at 127.0.0.1:1: Ray's own client retried for many minutes while the run held the lock.
    The run fails after [execution] connect_timeout with one line naming the address."""
    from calscore.flows.nightly import nightly_scoring
    from calscore.flows.runners import ExecutionError

    task.write_text(task.read_text() + '\n[execution]\nrunner = "ray"\nray_address = "127.0.0.1:1"\nconnect_timeout = 3\n')
    write_batch(tmp_path, "a", 5)
    started = time.monotonic()
    with pytest.raises(ExecutionError) as failed:
        nightly_scoring(str(task))
    assert time.monotonic() - started < 60
    assert str(failed.value).startswith("cannot reach the Ray cluster at 127.0.0.1:1 within 3 s ([execution] "
                                        "connect_timeout): ") and "\n" not in str(failed.value)
    assert q(tmp_path, "SELECT status FROM runs") == [("failed",)]  # the lock is free
    assert q(tmp_path, "SELECT count(*) FROM batches") == [(0,)]  # the batch is still pending


def test_an_input_location_that_does_not_answer_fails_the_run_within_its_deadline(tmp_path, task, monkeypatch):
    """An object store that accepts connections and never answers: pyarrow's S3 client retried for 99 s per call
    while the run held the lock. The listing gets [input] connect_timeout, then the run fails with one line naming
    the location."""
    from calscore.flows.nightly import nightly_scoring
    from calscore.jobs.batches.files import InputLocationError

    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog) and never answers
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    task.write_text(task.read_text().replace('location = "batches"',
                                             'location = "s3://calscore-test/batches"\nconnect_timeout = 3'))
    started = time.monotonic()
    with pytest.raises(InputLocationError) as failed:
        nightly_scoring(str(task))
    assert time.monotonic() - started < 60
    assert str(failed.value) == ("[input] location 's3://calscore-test/batches' did not answer within 3 s"
                                 " ([input] connect_timeout)")
    assert q(tmp_path, "SELECT status FROM runs") == [("failed",)]  # the lock is free
    silent.close()
