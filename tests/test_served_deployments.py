"""The infra/ deployments, served against a real Prefect server: a scheduled scoring run
writes rows with no manual call, and importing enough labels fires the recalibration
deployment's trigger.

A real `prefect server start` is used rather than `prefect_test_harness`: the harness
runs an ephemeral server, and Prefect does not run its scheduler service in ephemeral
servers, so no schedule would ever fire there.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flow_fixtures import task_toml, write_batch
from cli_processes import DEADLINE, REPO, env as _env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, procs: list[subprocess.Popen], timeout: float = 2 * DEADLINE):
    """Poll `check` until it is true; a loaded machine (load average 5-9 seen) gets minutes, not seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args[:4]} exited early while waiting for {what}"
        try:
            result = check()
        except (httpx.HTTPError, duckdb.Error):
            result = None
        if result:
            return result
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def prefect_server(tmp_path):
    port = _free_port()
    env = _env()
    env.update(
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PREFECT_UI_ENABLED="false",
    )
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200,
              "the Prefect server", [server])
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _flow_runs(env: dict, deployment: str, state: str) -> list[dict]:
    body = {"deployments": {"name": {"any_": [deployment]}}, "flow_runs": {"state": {"type": {"any_": [state]}}}}
    return httpx.post(f"{env['PREFECT_API_URL']}/flow_runs/filter", json=body, timeout=5).json()


def _count(task_dir: Path, sql: str) -> int:
    con = duckdb.connect(str(task_dir / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_and_leaves_no_run_running(tmp_path, tiny_model, prefect_server, signum):
    env = prefect_server
    task = task_toml(tmp_path, tiny_model)
    for night in range(4):  # enough rows that a run is in flight when the signal comes
        write_batch(tmp_path, f"night-{night:03d}", 3000, start=night * 3000)
    out = tmp_path / "serve.log"
    with out.open("w") as log:
        serve = subprocess.Popen([sys.executable, "-m", "calscore.cli", "serve", "--task", str(task), "--interval", "20"],
                                 cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: _flow_runs(env, "nightly-tiny", "RUNNING") and (tmp_path / "w.duckdb").exists()
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
    _wait(lambda: not _flow_runs(env, "nightly-tiny", "RUNNING") and not _flow_runs(env, "nightly-tiny", "PENDING"),
          "every flow run in a final state", [])
    assert _count(tmp_path, "SELECT count(*) FROM runs WHERE status = 'running'") == 0
    assert _count(tmp_path, "SELECT count(*) FROM runs WHERE status IN ('cancelled', 'completed')") == 1
