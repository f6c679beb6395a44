"""The infra/ deployments, served against a real Prefect server: a scheduled scoring run
writes rows with no manual call, and importing enough labels fires the recalibration
deployment's trigger.

A real `prefect server start` is used rather than `prefect_test_harness`: the harness
runs an ephemeral server, and Prefect does not run its scheduler service in ephemeral
servers, so no schedule would ever fire there.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calscore.jobs.warehouse.connection import reader
from flow_fixtures import task_toml, write_batch
from cli_processes import DEADLINE, REPO, prefect_server as real_prefect_server, wait_until as _wait

pytestmark = pytest.mark.minutes(4.3)


@pytest.fixture
def prefect_server(tmp_path):
    """A server of the test's own: the deployments it serves, their schedules and flow runs are the test's alone."""
    with real_prefect_server(tmp_path) as env:
        yield env


def _flow_runs(env: dict, deployment: str, state: str) -> list[dict]:
    body = {"deployments": {"name": {"any_": [deployment]}}, "flow_runs": {"state": {"type": {"any_": [state]}}}}
    return httpx.post(f"{env['PREFECT_API_URL']}/flow_runs/filter", json=body, timeout=5).json()


def _count(task_dir: Path, sql: str) -> int:
    # as an analyst's command reads: waiting while a run the schedule started holds the file (every 10 s here)
    with reader(task_dir / "w.duckdb") as con:
        return con.execute(sql).fetchall()[0][0]


def test_schedule_scores_and_label_import_triggers_recalibration(tmp_path, tiny_model, prefect_server):
    env = prefect_server
    task = task_toml(tmp_path, tiny_model, min_labels=20, refit_after=100)
    _, truth = write_batch(tmp_path, "night-001", 160)
    serve_log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen([sys.executable, "-m", "calscore.cli", "serve", "--task", str(task), "--interval", "10"],
                             cwd=REPO, env=env, stdout=serve_log, stderr=subprocess.STDOUT)
    try:
        # no manual call: the interval schedule alone must score the batch
        _wait(lambda: (tmp_path / "w.duckdb").exists() and _count(tmp_path, "SELECT count(*) FROM predictions") == 160,
              "a scheduled scoring run", [serve])
        # the rows are committed before the flow run reports its final state: wait for that too
        _wait(lambda: _flow_runs(env, "nightly-tiny", "COMPLETED"), "the scheduled run's Completed state", [serve])

        pq.write_table(pa.table({"id": list(truth)[:140], "label": list(truth.values())[:140]}), tmp_path / "l.parquet")
        imported = subprocess.run([sys.executable, "-m", "calscore.cli", "labels", "import", "--task", str(task),
                                   str(tmp_path / "l.parquet")], cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=DEADLINE)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert "event calscore.labels.imported emitted" in imported.stdout

        runs = _wait(lambda: _flow_runs(env, "recalibrate-tiny", "COMPLETED"), "a triggered recalibration", [serve])
        assert runs[0]["parameters"]["task_path"] == str(task.resolve())
        assert _count(tmp_path, "SELECT count(*) FROM calibrator_events WHERE event IN ('promoted', 'rejected')") == 1
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        serve_log.close()


@pytest.fixture(scope="module")
def stop_server(tmp_path_factory):
    """One server for both signals: each serves a task of its own name, so its deployments, schedules and flow
    runs are apart from the other's (a server start is 15 s on a loaded machine)."""
    with real_prefect_server(tmp_path_factory.mktemp("stop-server")) as env:
        yield env


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_and_leaves_no_run_running(tmp_path, tiny_model, stop_server, signum):
    env, name = stop_server, f"tiny-{signum.name.lower()}"
    task = task_toml(tmp_path, tiny_model, name=name)
    for night in range(4):  # enough rows that a run is in flight when the signal comes
        write_batch(tmp_path, f"night-{night:03d}", 3000, start=night * 3000)
    out = tmp_path / "serve.log"
    with out.open("w") as log:
        serve = subprocess.Popen([sys.executable, "-m", "calscore.cli", "serve", "--task", str(task), "--interval", "20"],
                                 cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: _flow_runs(env, f"nightly-{name}", "RUNNING") and (tmp_path / "w.duckdb").exists()
                  and _count(tmp_path, "SELECT count(*) FROM runs WHERE status = 'running'") == 1,
                  "a scheduled run scoring", [serve])
            serve.send_signal(signum)
            assert serve.wait(timeout=DEADLINE) == 0
        finally:
            if serve.poll() is None:
                serve.kill()
    printed = out.read_text()
    assert "Traceback" not in printed, printed
    assert "calscore serve: stopped" in printed
    # nothing is left running: not in Prefect, not in the warehouse's run lock
    _wait(lambda: not any(_flow_runs(env, f"nightly-{name}", state) for state in ("RUNNING", "PENDING")),
          "every flow run in a final state", [])
    # every run ended cancelled or completed (on a loaded machine the schedule may have finished one before the
    # run in flight at the signal), none failed by the stop
    assert _count(tmp_path, "SELECT count(*) FROM runs") >= 1
    assert _count(tmp_path, "SELECT count(*) FROM runs WHERE status NOT IN ('cancelled', 'completed')") == 0
