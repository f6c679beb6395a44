"""Scale-out on a real two-node Ray cluster (head + one node, 1 CPU each, on this machine), through
prefect-ray, against the test's Prefect server, with a real DuckDB file: both nodes score, every row is
written once, the task runs are recorded under the flow run, and a worker SIGKILLed mid-batch is replaced."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest

from flow_fixtures import task_toml, write_batch

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("prefect_harness"), pytest.mark.minutes(1.9)]
DEADLINE = 300


@pytest.fixture(scope="module")
def ray_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    yield cluster
    cluster.shutdown()


def ray_task(tmp_path: Path, model: Path, cluster) -> Path:
    task = task_toml(tmp_path, model)
    task.write_text(task.read_text() + f'\n[execution]\nrunner = "ray"\nray_address = "{cluster.address}"\n')
    return task


def q(task_dir: Path, sql: str):
    with duckdb.connect(str(task_dir / "w.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_the_night_fans_out_to_both_nodes_and_every_row_is_written_once(tmp_path, tiny_model, ray_cluster):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, TaskRunFilter, TaskRunFilterFlowRunId

    from calscore.flows.nightly import nightly_scoring

    task = ray_task(tmp_path, tiny_model, ray_cluster)
    for night in range(6):
        write_batch(tmp_path, f"night-{night:03d}", 300, start=night * 300)
    summary = nightly_scoring(str(task))
    assert summary["batches_done"] == 6 and summary["batches_failed"] == []
    assert q(tmp_path, "SELECT count(*), count(DISTINCT row_id) FROM predictions") == [(1800, 1800)]
    workers = [json.loads(w) for w in summary["workers"]]
    assert len({w["ray_node"] for w in workers}) == 2  # both nodes scored
    assert all(w["pid"] != os.getpid() for w in workers)  # in Ray workers, not in the flow's process
    with get_client(sync_client=True) as client:  # the scoring task runs are recorded in the flow's server
        # filtered on the server: the session's Prefect server holds every earlier test's runs
        [fan_out] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[summary["run_id"]])))
        scored = client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[fan_out.id])))
    names = sorted(t.name for t in scored if t.name.startswith("score "))
    assert names == [f"score night-{n:03d}.parquet" for n in range(6)]


def test_a_worker_killed_mid_batch_is_replaced_and_the_batch_written_once(tmp_path, tiny_model, ray_cluster):
    from calscore.flows.nightly import nightly_scoring

    task = ray_task(tmp_path, tiny_model, ray_cluster)
    write_batch(tmp_path, "big", 6000)
    killed = {}

    def kill_the_first_worker():
        """The scoring task names its process in each staged part: kill it once the first part is staged."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not killed:
            for part in (tmp_path / "staging").rglob("part-00000.json"):
                pid = json.loads(part.read_text())["worker"]["pid"]
                os.kill(pid, signal.SIGKILL)
                killed["pid"] = pid
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_first_worker, daemon=True)
    killer.start()
    summary = nightly_scoring(str(task))
    killer.join(timeout=DEADLINE)
    assert killed, "the first part was never staged"
    assert summary["batches_done"] == 1 and summary["batches_failed"] == []
    [worker] = [json.loads(w) for w in summary["workers"]]
    assert worker["pid"] != killed["pid"]  # another worker finished it
    assert q(tmp_path, "SELECT count(*), count(DISTINCT row_id) FROM predictions") == [(6000, 6000)]
    assert q(tmp_path, "SELECT count(*) FROM quarantine") == [(0,)]
