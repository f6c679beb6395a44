"""Nightly health checks: PSI by hand, and a drifted night against a real Prefect server -- recorded in the
warehouse, shown by `calscore status`, the run marked with warnings, and a Prefect event to notify on."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import duckdb
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calscore.jobs.reports.health import psi
from flow_fixtures import task_toml, texts, write_batch, write_lookup_scores
from test_crash_safety import DEADLINE, REPO
from test_served_deployments import _wait, prefect_server  # noqa: F401  (the real-server fixture)


def test_psi_by_hand():
    rng = np.random.default_rng(0)
    expected = rng.uniform(size=20_000)
    assert psi(expected, rng.uniform(size=20_000)) < 0.01  # the same distribution: stable
    # everything in the top decile: 9 empty bins (floored at 1e-4) and one holding it all
    empty, full = (1e-4 - 0.1) * math.log(1e-4 / 0.1), (1.0 - 0.1) * math.log(1.0 / 0.1)
    assert psi(expected, np.full(1000, 0.999)) == pytest.approx(9 * empty + full, rel=1e-2)


DRIFTED = [f"a text from another source, number {i}" for i in range(100)]


def drifted_scores(path, body, truth):
    """Normal scores for night 1's texts; for DRIFTED a model that stopped answering in format and leans positive."""
    normal = pq.read_table(write_lookup_scores(path, body, truth))
    drift = pa.table({"text": DRIFTED, "positive": [math.log(0.28)] * 100, "negative": [math.log(0.02)] * 100})
    pq.write_table(pa.concat_tables([normal, drift]), path)
    return path


def test_a_drifted_night_warns_in_status_and_as_a_prefect_event(tmp_path, prefect_server):  # noqa: F811
    env = prefect_server
    _, body, truth = texts(300)
    task = task_toml(tmp_path, drifted_scores(tmp_path / "scores.parquet", body, truth), backend="lookup")

    def score() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "calscore.cli", "score", "--task", str(task)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=DEADLINE)

    write_batch(tmp_path, "night-001", 300)
    first = score()
    assert first.returncode == 0 and "health: 0 check(s) ok, 0 warning(s)" in first.stdout, first.stdout + first.stderr
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(100)], "text": DRIFTED, "category": ["a"] * 100}),
                   tmp_path / "batches" / "night-002.parquet")
    second = score()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "warning: mean coverage 0.300 vs" in second.stdout and "warning: PSI of positive" in second.stdout

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        checks = dict(con.execute("SELECT check_name, status FROM health_nightly").fetchall())
        run_status = con.execute("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    assert checks["coverage"] == "warning" and checks["psi:positive"] == "warning" and checks["quarantine"] == "ok"
    assert run_status == "completed_with_warnings"
    status = subprocess.run([sys.executable, "-m", "calscore.cli", "status", "--task", str(task)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=DEADLINE).stdout
    assert "warning(s)" in status and "warning: mean coverage 0.300" in status

    url = env["PREFECT_API_URL"]
    nightly = {"flows": {"name": {"any_": ["calscore-nightly-scoring"]}}, "sort": "START_TIME_DESC", "limit": 1}
    runs = httpx.post(f"{url}/flow_runs/filter", json=nightly, timeout=10).json()
    assert runs[0]["state"]["name"] == "Completed with warnings"
    body_filter = {"filter": {"event": {"name": ["calscore.health.warning"]}}, "limit": 10}
    events = _wait(lambda: httpx.post(f"{url}/events/filter", json=body_filter, timeout=10).json()["events"],
                   "the health warning event", [])
    assert events[0]["resource"]["prefect.resource.id"] == "calscore.task.tiny"
    assert {w["check"] for w in events[0]["payload"]["warnings"]} >= {"coverage", "psi:positive"}
    assert json.loads(json.dumps(events[0]["payload"]))["run_id"].startswith("score-")
