"""Exactly once under crashes and concurrency, with real subprocesses and SIGKILL."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import pytest

import derived_tables
from cli_processes import DEADLINE, REPO, calscore, env, finish, marked_processes, sigkill, wait_for_line
from flow_fixtures import task_toml, write_batch

pytestmark = pytest.mark.minutes(3.6)


def rows(task_dir: Path, sql: str):
    con = duckdb.connect(str(task_dir / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def assert_exactly_once(task_dir: Path, expected_rows: int, expected_batches: int) -> None:
    assert rows(task_dir, "SELECT count(*), count(DISTINCT row_id) FROM predictions") == [(expected_rows, expected_rows)]
    assert rows(task_dir, "SELECT count(*) FROM batches WHERE status = 'done'") == [(expected_batches,)]
    assert rows(task_dir, "SELECT count(*) FROM quarantine") == [(0,)]
    # the counts of current decisions (migration 016) hold every row once, as a recount does
    assert rows(task_dir, "SELECT sum(rows) FROM decision_counts") == [(expected_rows,)]
    assert derived_tables.differences(task_dir / "w.duckdb") == []


@pytest.fixture
def five_batches(tmp_path, tiny_model):
    task = task_toml(tmp_path, tiny_model)
    for night in range(5):
        write_batch(tmp_path, f"night-{night:03d}", 300, start=night * 300)
    return tmp_path, task


def test_sigkill_mid_run_then_rerun_gives_every_row_once(five_batches, shared_prefect_api):
    task_dir, task = five_batches
    first = calscore("score", "--task", str(task), PREFECT_API_URL=shared_prefect_api)
    wait_for_line(first, ": 300 scored")  # the first batch is written: the run is scoring the next one
    sigkill(first)
    done_before = rows(task_dir, "SELECT count(*) FROM batches WHERE status = 'done'")[0][0]
    assert 1 <= done_before < 5

    code, out = finish(calscore("score", "--task", str(task), PREFECT_API_URL=shared_prefect_api))
    assert code == 0, out
    assert_exactly_once(task_dir, 1500, 5)
    # the killed run is recognised as dead (same host, pid gone) and marked so
    assert rows(task_dir, "SELECT status FROM runs ORDER BY started_at") == [("abandoned",), ("completed",)]


# moments after the run took the lock: just taken, a batch being scored, a batch just written
STOP_POINTS = ("batch(es) to score", "rows/s", ": 300 scored")


def stop_by_signal(task_dir: Path, task: Path, signum: int) -> str:
    """Run `score` on Prefect's temporary server (no PREFECT_API_URL here: the server is one of the processes the run
    started) and send `signum` at a random moment: the run stops within seconds, says so in one line, exits
    128 + the signal, is recorded as cancelled, leaves no process behind (its temporary Prefect server included)
    and whole batches only. Returns what the moment was, for the messages of later assertions."""
    moment, extra_lines = random.choice(STOP_POINTS), random.randint(0, 3)
    mark = uuid.uuid4().hex
    run = calscore("score", "--task", str(task), mark=mark)
    wait_for_line(run, moment)
    for _ in range(extra_lines):
        run.stdout.readline()
    assert marked_processes(mark), "the run had no process to stop"
    (os.killpg if signum == signal.SIGINT else os.kill)(run.pid, signum)
    stopped_at = time.monotonic()
    code, out = finish(run)
    seconds, when = time.monotonic() - stopped_at, f"{signal.Signals(signum).name} at {moment!r} + {extra_lines} line(s)"
    assert code == 128 + signum and seconds < 30, (when, seconds, out[-3000:])
    assert out.splitlines()[-1].startswith(f"calscore: stopped by {signal.Signals(signum).name}; run score-"), when
    assert "recorded as cancelled" in out.splitlines()[-1] and "Traceback" not in out, (when, out[-3000:])
    assert marked_processes(mark) == [], when  # nothing the run started outlives it
    assert rows(task_dir, "SELECT status FROM runs ORDER BY started_at")[-1] == ("cancelled",), when
    done = rows(task_dir, "SELECT count(*) FROM batches WHERE status = 'done'")[0][0]
    assert rows(task_dir, "SELECT count(*) FROM predictions") == [(300 * done,)], when  # whole batches only
    return when


def test_sigint_and_sigterm_stop_the_run_in_seconds_and_every_process_it_started(five_batches, shared_prefect_api):
    """Ctrl-C (SIGINT to the process group) stops one run and SIGTERM to the command the next (in random order),
    each at a random moment of its run (`stop_by_signal`); then a run writes every row once. Both signals go
    through the supervisor's one handler, so one warehouse serves both: the second stopped run starts where the
    first stopped, which five more batches keep from being the end of the input."""
    task_dir, task = five_batches
    first, second = random.sample([signal.SIGINT, signal.SIGTERM], 2)
    stops = [stop_by_signal(task_dir, task, first)]
    for night in range(5, 10):
        write_batch(task_dir, f"night-{night:03d}", 300, start=night * 300)
    stops.append(stop_by_signal(task_dir, task, second))

    code, out = finish(calscore("score", "--task", str(task), PREFECT_API_URL=shared_prefect_api))
    assert code == 0, (stops, out)
    assert_exactly_once(task_dir, 3000, 10)
    assert rows(task_dir, "SELECT status FROM runs ORDER BY started_at") == [("cancelled",), ("cancelled",),
                                                                             ("completed",)], stops


@pytest.mark.ray
def test_sigterm_ends_the_ray_instance_the_run_started(five_batches, shared_prefect_api):
    """A run on `runner = "ray"` without an address starts a Ray instance of its own (raylet, GCS, workers):
    SIGTERM mid-batch ends every one of its processes too."""
    task_dir, task = five_batches
    task.write_text(task.read_text() + '\n[execution]\nrunner = "ray"\n')
    mark = uuid.uuid4().hex
    run = calscore("score", "--task", str(task), mark=mark, PREFECT_API_URL=shared_prefect_api)
    wait_for_line(run, "batch(es) to score")
    deadline = time.monotonic() + DEADLINE
    while not any("ray::" in process for process in marked_processes(mark)):  # a Ray worker is scoring
        assert run.poll() is None and time.monotonic() < deadline, "no Ray worker ever started"
        time.sleep(0.2)
    assert any("raylet" in process for process in marked_processes(mark))
    os.kill(run.pid, signal.SIGTERM)
    code, out = finish(run)
    assert code == 143 and out.splitlines()[-1].startswith("calscore: stopped by SIGTERM; run score-"), out[-3000:]
    assert marked_processes(mark) == []
    assert rows(task_dir, "SELECT status FROM runs") == [("cancelled",)]


COMMIT_STALL = """
import pathlib, sys, time
import calscore.jobs.warehouse.writer as load
from calscore.jobs.batches.files import discover
from calscore.jobs.warehouse.ledger import pending
from calscore.jobs.warehouse.runs import start_run
from calscore.jobs.spec import load_spec
from calscore.jobs.batches.stage import get_scorer, score_batch

spec, marker = load_spec(sys.argv[1]), pathlib.Path(sys.argv[2])
record_batch = load.record_batch
def stall(*args):  # fault injection: stop inside the batch's transaction, just before COMMIT
    record_batch(*args)
    marker.write_text("in the commit")
    time.sleep(600)
load.record_batch = stall
run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")
ref = pending(spec, discover(spec.input))[0]
load.write_staged(spec, score_batch(spec, ref, run_id, get_scorer(spec), None), run_id)
"""


def test_sigkill_during_the_commit_then_rerun_gives_every_row_once(five_batches, tmp_path, shared_prefect_api):
    task_dir, task = five_batches
    marker = tmp_path / "in-commit"
    stalled = subprocess.Popen([sys.executable, "-c", COMMIT_STALL, str(task), str(marker)], cwd=REPO, env=env(),
                               start_new_session=True)
    deadline = time.monotonic() + DEADLINE
    while not marker.exists():
        assert stalled.poll() is None and time.monotonic() < deadline, "the writer never reached its commit"
        time.sleep(0.05)
    sigkill(stalled)
    assert rows(task_dir, "SELECT count(*) FROM predictions") == [(0,)]  # the open transaction died with it

    code, out = finish(calscore("score", "--task", str(task), PREFECT_API_URL=shared_prefect_api))
    assert code == 0, out
    assert_exactly_once(task_dir, 1500, 5)


def test_two_concurrent_runs_leave_every_row_once(five_batches, shared_prefect_api):
    """Both on one Prefect server, as served deployments are: neither waits for a temporary server of its own, so
    they reach the lock together."""
    task_dir, task = five_batches
    a, b = (calscore("score", "--task", str(task), PREFECT_API_URL=shared_prefect_api) for _ in "ab")
    (code_a, out_a), (code_b, out_b) = finish(a), finish(b)
    assert sorted([code_a, code_b]) in ([0, 0], [0, 3]), out_a + out_b
    if 3 in (code_a, code_b):  # the loser refused with a message saying who holds the task
        assert "holds the lock" in (out_a if code_a == 3 else out_b)
    assert_exactly_once(task_dir, 1500, 5)


def test_a_live_run_keeps_its_lock_however_old_its_heartbeat(tmp_path):
    """Same host: a live pid is never taken over (a batch longer than STALE_AFTER does not lose the lock);
    its heartbeat thread keeps beating; another host's stale lock is released only by hand."""
    import socket
    from datetime import timedelta

    from calscore.jobs.common.clock import utcnow
    from calscore.jobs.warehouse.connection import writer
    from calscore.jobs.warehouse.runs import STALE_AFTER, RunLocked, beating, release, start_run

    warehouse = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # a live process on this host
    try:
        run_id = start_run(warehouse, "t", "tv", "score")
        with writer(warehouse) as con:  # the run is another live process's, and its heartbeat is an hour old
            con.execute("UPDATE runs SET pid = ?, heartbeat_at = ? WHERE run_id = ?",
                        [holder.pid, utcnow() - STALE_AFTER - timedelta(hours=1), run_id])
        with pytest.raises(RunLocked, match="its process is alive on this host"):
            start_run(warehouse, "t", "tv", "score")
    finally:
        holder.kill()
        holder.wait()
    # another host: refused while the heartbeat is fresh, with how long and how to release it
    with writer(warehouse) as con:
        con.execute("UPDATE runs SET host = 'gone-host', heartbeat_at = ? WHERE run_id = ?", [utcnow(), run_id])
    with pytest.raises(RunLocked) as refused:
        start_run(warehouse, "t", "tv", "score")
    assert "expires 29 min" in str(refused.value) or "expires 30 min" in str(refused.value)
    assert f"calscore runs release {run_id}" in str(refused.value)
    assert "released the lock" in release(warehouse, "t", run_id, "ops", "host replaced")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        status, summary = con.execute("SELECT status, summary FROM runs WHERE run_id = ?", [run_id]).fetchone()
    assert status == "released" and "host replaced" in summary and socket.gethostname() != "gone-host"

    # a running run's heartbeat moves on its own while the run works
    mine = start_run(warehouse, "t", "tv", "score")
    read = "SELECT heartbeat_at FROM runs WHERE run_id = ?"
    with writer(warehouse) as con:
        first = con.execute(read, [mine]).fetchone()[0]
    with beating(warehouse, mine, every=timedelta(seconds=0.2)):
        deadline = time.monotonic() + DEADLINE
        while True:
            # opened as the heartbeat thread opens it: in one process DuckDB refuses a read-only connection
            # while a read-write one is open ("a different configuration than existing connections")
            with writer(warehouse) as con:
                if con.execute(read, [mine]).fetchone()[0] > first:
                    break
            assert time.monotonic() < deadline, "the heartbeat never moved"
            time.sleep(0.1)
