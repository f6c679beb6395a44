"""Scale-out benchmark: the same batches scored in one run by

  a  the default flow: one process, one scorer, torch with 2 threads;
  b  Ray: 2 workers x 1 thread (num_cpus=1 per scoring task);
  c  Ray: 1 worker x 2 threads (num_cpus=2 per scoring task);

on a local Ray instance of 2 CPUs, with the demo model and the demo's texts, through the real
nightly flow (Prefect test server, DuckDB file). Prints rows/s, the parallel efficiency of (b)
against (a), the per-batch overhead of the Ray path (a scoring task's run time minus the time its
batch took to score and stage, i.e. task start-up, spec load, model cache hit, Prefect's task
engine; the first batch on each worker also loads the model, shown apart) and the writer's share
of the wall time. Targets: Ray overhead < 10% of scoring time for 1,000-row batches; writer < 5%.

    CALSCORE_CACHE=.cache/calscore HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_scaleout.py --batches 4 --rows 1000
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"ray overhead / scoring": 0.10, "writer / wall": 0.05}


def make_task(folder: Path, batches: int, rows: int, runner: str, num_cpus: int) -> Path:
    """A copy of the demo task scoring `batches` demo nights of `rows` rows, in its own folder."""
    from calscore.jobs.demo.data import write_demo_batches

    write_demo_batches(folder / "batches", folder / "labels.parquet", rows_per_batch=rows, n_batches=batches)
    demo = (ROOT / "infra" / "tasks" / "demo.toml").read_text()
    head, _, _ = demo.partition("[input]")
    task = folder / "task.toml"
    task.write_text(head + '[input]\nlocation = "batches"\nsegment_column = "category"\n\n[warehouse]\n'
                    f'path = "w.duckdb"\n\n[execution]\nrunner = "{runner}"\nnum_cpus = {num_cpus}\n')
    return task


def task_overheads(summary: dict) -> tuple[list[float], list[float]]:
    """(later batches, first batch per worker): task run time minus the batch's scoring time, in seconds."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, TaskRunFilter, TaskRunFilterFlowRunId

    with get_client(sync_client=True) as client:
        [fan_out] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[summary["run_id"]])))
        runs = [t for t in client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(
                    any_=[fan_out.id]))) if t.name.startswith("score ")]
    seconds = {d["batch"]: d["seconds"] for d in summary["done"]}
    first, later, seen = [], [], set()
    for run in sorted(runs, key=lambda t: t.start_time):
        batch = run.name.removeprefix("score ")
        worker = json.dumps(next(d["worker"] for d in summary["done"] if d["batch"] == batch), sort_keys=True)
        worker_key = json.loads(worker).get("pid")
        overhead = run.total_run_time.total_seconds() - seconds[batch]
        (later if worker_key in seen else first).append(overhead)
        seen.add(worker_key)
    return later, first


def run_mode(name: str, folder: Path, batches: int, rows: int, runner: str, num_cpus: int) -> dict:
    import torch

    from calscore.flows.nightly import nightly_scoring

    torch.set_num_threads(2)
    task = make_task(folder / name, batches, rows, runner, num_cpus)
    started = time.perf_counter()
    summary = nightly_scoring(str(task))
    wall = time.perf_counter() - started
    return {"name": name, "wall": wall, "rows": summary["rows_scored"], "scoring": summary["seconds_scoring"],
            "writing": summary.get("seconds_writing", 0.0), "run_id": summary["run_id"], "summary": summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=4, help="demo nights to score (each mode scores the same ones)")
    parser.add_argument("--rows", type=int, default=1000, help="rows per batch")
    args = parser.parse_args(argv)

    import ray
    from prefect.testing.utilities import prefect_test_harness

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="calscore-scaleout-") as tmp, prefect_test_harness(server_startup_timeout=90):
        folder = Path(tmp)
        ray.init(num_cpus=2, include_dashboard=False)
        try:
            results = [
                run_mode("a: local, 2 threads", folder, args.batches, args.rows, "local", 1),
                run_mode("b: Ray, 2 workers x 1 thread", folder, args.batches, args.rows, "ray", 1),
                run_mode("c: Ray, 1 worker x 2 threads", folder, args.batches, args.rows, "ray", 2),
            ]
            overheads = {r["name"]: task_overheads({**r["summary"], "done": r["summary"]["done"]})
                         for r in results[1:]}
        finally:
            ray.shutdown()

    print(f"\n{args.batches} batches x {args.rows} demo rows; demo model; 2 CPUs\n")
    print(f"{'mode':<32} {'rows/s':>8} {'wall s':>8} {'scoring s':>10} {'writer s':>9} {'writer/wall':>12}")
    for r in results:
        print(f"{r['name']:<32} {r['rows'] / r['wall']:8.2f} {r['wall']:8.1f} {r['scoring']:10.1f} "
              f"{r['writing']:9.2f} {r['writing'] / r['wall']:12.1%}")
    base = results[0]["rows"] / results[0]["wall"]
    efficiency = (results[1]["rows"] / results[1]["wall"]) / base
    print(f"\nparallel efficiency of b against a: {efficiency:.2f}x the rows/s on the same 2 CPUs")
    ok = True
    for name, (later, first) in overheads.items():
        r = next(x for x in results if x["name"] == name)
        per_batch_scoring = r["scoring"] / max(1, len(r["summary"]["done"]))
        loads = f"first batch per worker, with the model load: {', '.join(f'{x:.1f}' for x in first)} s"
        if not later:  # every worker scored one batch: the steady overhead was never seen, so nothing is judged
            print(f"{name}: per-batch Ray overhead not measured -- no worker scored a second batch ({loads}); "
                  f"give each worker two or more (--batches >= 4)")
            continue
        share = statistics.mean(later) / per_batch_scoring
        print(f"{name}: per-batch Ray overhead {statistics.mean(later):.2f} s ({share:.1%} of "
              f"{per_batch_scoring:.1f} s scoring; {loads})")
        passed = share < TARGETS["ray overhead / scoring"]
        ok &= passed
        print(f"  ray overhead / scoring: {share:.1%}  target < {TARGETS['ray overhead / scoring']:.0%}  "
              f"{'ok' if passed else 'MISSED'}")
    worst = max(r["writing"] / r["wall"] for r in results)
    passed = worst < TARGETS["writer / wall"]
    print(f"writer / wall (worst mode): {worst:.1%}  target < {TARGETS['writer / wall']:.0%}  {'ok' if passed else 'MISSED'}")
    return 0 if ok and passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
