"""The analyst side of the warehouse as it grows: seconds and peak memory per operation and size, and the growth
per 10x, as one markdown table.

For each size it grows a synthetic warehouse by SQL (synthetic_warehouse.py: the demo's shape, 28 nights, 2%
of the predictions audited and labeled) in a scratch folder, never in the repository, then runs each operation in
a fresh process and records its wall time, its CPU time (less sensitive to a busy machine) and the peak resident
memory of that process (VmHWM, Linux):
- the commands as an analyst types them: `calscore thresholds`, `calscore report`, `calscore recalibrate` (in
  this process when no Prefect API is configured), and what the recalibration flow does besides: `recalibrate`
  and the report summary it attaches to the run (and that recalibration alone, its re-application apart); a
  new champion re-applied to the newest 200,000 rows, whose rows per CPU second should not fall as the
  warehouse grows;
- every read the docs show, exactly as written (VIEWS: the review queue's head, the CLI example, its size,
  each example query in sql/queries, the NLL one-liner), and two a UI makes (one row of predictions_current,
  bucket_counts_nightly for the last 7 nights): the median of three runs of the query in a fresh read-only
  session with DuckDB's default settings, as an analyst's session has them.

Example:
    python bench/bench_warehouse.py                          # 10k 100k 1M 10M (10M: ~2 GB of disk, minutes)
    python bench/bench_warehouse.py --sizes 10k 100k --dir /tmp/warehouses --keep
    python bench/bench_warehouse.py --labels 2000           # the same 2,000 labels at every size
"""
from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import resource
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from calscore.jobs.warehouse.views import query_files

ROOT = Path(__file__).resolve().parents[1]
# Every read the docs show (docs/warehouse), exactly as written there (tests/test_views.py runs each), then two a UI makes.
# '@name' is sql/queries/name.sql; $tv, $row and $last are filled in from the warehouse.
VIEWS = {
    "review queue head: order by decision_confidence, scored_at, row_id limit 50":
        "select * from review_queue order by decision_confidence, scored_at, row_id limit 50",
    "review queue: order by decision_confidence limit 20 (CLI example)":
        "select * from review_queue order by decision_confidence limit 20",
    "review queue size: count(*)": "select count(*) from review_queue",
    "review queue size per task version": "select task_name, task_version, count(*) as waiting from review_queue group by all",
    **{f"{name} (example query)": f"@{name}" for name in query_files()},
    "rows and mean confidence per bucket (decision_counts)":
        "select bucket, sum(rows), sum(confidence_sum) / sum(rows) from decision_counts group by bucket",
    "NLL of the held-out labels (one-liner)":
        "select avg(-ln(calibrated_probs[true_label])) from predictions_current where is_labeled and calibrated_probs is not null",
    "one row (predictions_current)": "select * from predictions_current where task_version = $tv and row_id = $row",
    "last 7 nights (bucket_counts_nightly)": "select * from bucket_counts_nightly where night > $last - 7",
}
# What fills each parameter: looked up only for a read that uses it, so that a read's peak memory is its own.
PARAMS = {
    "tv": "select task_version from predictions limit 1",
    "row": "select row_id from predictions limit 1 offset (select count(*) // 2 from predictions)",
    "last": "select max(night) from current_decisions",
}


# The re-application's rate (rows per CPU second) at every size: the same number of rows, a new champion.
REAPPLY_ROWS = 200_000
REAPPLY = f"re-application of the newest {REAPPLY_ROWS:,} rows (a new champion)"
# The promoting recalibration's own work (every label's evidence built, the decision, the snapshot), measured
# inside the promoting run with its re-application apart.
RECALIBRATION = "of which the recalibration alone (its re-application apart)"


def parse_size(text: str) -> int:
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1_000}k"


def measure(args: list[str], env: dict) -> tuple[float, float, float, str]:
    """(seconds, CPU seconds, peak resident memory in MB, stdout) of one fresh process running `args` (`-m module
    ...` or a child mode of this script). The process reports its own high-water mark at exit: the kernel's
    per-child maximum (wait4) would start from this process's size at the fork."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        peak = Path(tmp) / "peak_kb"
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--measured", str(peak), *args], stdout=out, stderr=err,
                                env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{err.read().decode()[-2000:]}")
        return seconds, usage.ru_utime + usage.ru_stime, int(peak.read_text()) / 1024, out.read().decode()


def measured(peak_file: str, args: list[str]) -> None:
    """Run `args` in this process and write its peak resident memory (VmHWM, kB) to `peak_file` at exit."""
    def write_peak() -> None:
        # a command that runs its work in a child (the CLI's supervisor) peaks there: the largest reaped child
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        Path(peak_file).write_text(str(max(round(peak_mb() * 1024), children)))

    atexit.register(write_peak)
    if args[0] == "-m":
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    elif args[0] == "--child-view":
        child_view(*args[1:3])
    elif args[0] == "--child-write":
        child_write(args[1])
    elif args[0] == "--child-migrate":
        child_migrate(args[1])
    elif args[0] == "--child-reapply":
        child_reapply(*args[1:3])
    else:
        child_recalibration(args[1])


def child_view(path: str, name: str) -> None:
    """In a fresh process: the median of three runs of one view query (seconds and CPU seconds), as JSON."""
    con = duckdb.connect(path, read_only=True)
    con.execute("SET enable_progress_bar = false")
    sql = VIEWS[name]
    sql = query_files()[sql[1:]].strip().rstrip(";") if sql.startswith("@") else sql
    used = {k: con.execute(lookup).fetchall()[0][0] for k, lookup in PARAMS.items() if f"${k}" in sql}
    runs = []
    for _ in range(3):
        start, cpu = time.perf_counter(), time.process_time()
        con.execute(sql, used).fetchall()
        runs.append((time.perf_counter() - start, time.process_time() - cpu))
    seconds, cpu = sorted(runs)[1]
    print(json.dumps({"seconds": seconds, "cpu": cpu}))


def child_recalibration(task: str) -> None:
    """In a fresh process: what the recalibration flow does, without Prefect: recalibrate (promoting, on a
    warehouse with a temperature champion), its re-application, then the summary; what it did, as JSON, with the
    recalibration's own seconds and peak apart from the re-application's (#19 asks for the one, #20 for the other).

    The re-application the promotion queues runs after `recalibrate` returns instead of inside it (its snapshot
    reads labels, fit rows and evidence, never the re-applied decisions, so the work is the same): the process's
    peak before it is the recalibration's."""
    from calscore.jobs.calibrators import recalibrate as recalibration
    from calscore.jobs.reports.html_report import report_markdown
    from calscore.jobs.spec import load_spec

    spec = load_spec(task)
    run_now = recalibration.continue_reapplications
    recalibration.continue_reapplications = lambda s, *a, **k: 0  # deferred (docstring); nothing is pending here
    start, cpu = time.perf_counter(), time.process_time()
    result = recalibration.recalibrate(spec, "bench-recalibrate")
    own = {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "peak_mb": peak_mb()}
    start, cpu = time.perf_counter(), time.process_time()
    reapplied = run_now(spec)
    apply = {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    report_markdown(spec)
    print(json.dumps({"recalibrate": own, "reapply": apply, "reapplied": reapplied,
                      **{k: result.get(k) for k in ("promoted", "method", "n_evidence", "recomputed")}}))


def peak_mb() -> float:
    """This process's peak resident memory so far (VmHWM, Linux), in MB."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def child_write(path: str) -> None:
    """In a fresh process: a 10,000-row batch written as the writer writes one (its ids checked against the
    predictions once, then its parts of 2,048 rows, one transaction), the rows copied from the warehouse under new
    ids; seconds and CPU seconds as JSON."""
    from calscore.jobs.batches.stage import CHUNK_ROWS
    from calscore.jobs.warehouse.connection import writer
    from calscore.jobs.warehouse.writer import check_scored_before, insert_predictions

    with writer(Path(path)) as con:
        batch = con.sql("select * exclude (row_id, written_at, night, queue_confidence, reapplied_calibrator_version,"
                        " reapplied_label, reapplied_confidence, reapplied_calibrated_probs_json, reapplied_bucket,"
                        " reapplied_bucket_reason, reapplied_at, reapplied_run_id), 'bench-' || row_id as row_id,"
                        " 0 as row_index from predictions limit 10000").to_arrow_table()
        start, cpu = time.perf_counter(), time.process_time()
        con.execute("BEGIN TRANSACTION")
        check_scored_before(con, batch.select(["task_version", "row_id"]))
        for offset in range(0, batch.num_rows, CHUNK_ROWS):
            insert_predictions(con, batch.slice(offset, CHUNK_ROWS), "bench-write")
        con.execute("COMMIT")
        print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}))


def child_reapply(task: str, rows: str) -> None:
    """In a fresh process: a new champion (temperature scaling) re-applied to the newest `rows` predictions, the
    re-application job's chunks as a promotion runs them; seconds, CPU seconds and rows as JSON."""
    import numpy as np

    from calscore.calibration_store.document import build_document
    from calscore.calibration_store.registry import make_calibrator
    from calscore.calibration_store.store import save_calibrator
    from calscore.jobs.calibrators.reapply import continue_reapplications, queue_reapplication
    from calscore.jobs.common.clock import utcnow
    from calscore.jobs.spec import load_spec
    from calscore.jobs.warehouse.connection import writer

    spec = load_spec(task)
    spec = spec.model_copy(update={"calibration": spec.calibration.model_copy(
        update={"reapply_days": 100_000, "reapply_max_rows": int(rows)})})
    logprobs = np.log([[0.7, 0.3], [0.3, 0.7], [0.8, 0.2], [0.4, 0.6]] * 10)
    calibrator = make_calibrator("temperature", spec.label_names).fit(logprobs, np.array([0, 1, 1, 1] * 10))
    document = build_document(calibrator, spec.name, spec.task_version, (utcnow(), utcnow()), 40, {"n": 40})
    with writer(spec.warehouse.path) as con:
        version = save_calibrator(con, document, actor="bench")
        con.execute("BEGIN TRANSACTION")
        queue_reapplication(con, spec, version, "bench-reapply")
        con.execute("COMMIT")
    start, cpu = time.perf_counter(), time.process_time()
    done = continue_reapplications(spec)
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "rows": done}))


def child_migrate(task: str) -> None:
    """In a fresh process: `calscore init` on a warehouse left at schema 8, the one before the nights (009)."""
    from calscore.jobs.spec import load_spec
    from calscore.jobs.warehouse.connection import writer

    with writer(load_spec(task).warehouse.path):
        pass


def operations(task: Path, out: Path) -> dict[str, list[str]]:
    cli = ["-m", "calscore.cli"]
    ops = {
        "calscore thresholds": cli + ["thresholds", "--task", str(task)],
        "calscore report": cli + ["report", "--task", str(task), "--out", str(out)],
    }
    ops.update({name: ["--child-view", str(task.parent / "calscore.duckdb"), name] for name in VIEWS})
    # writing to the warehouse: last
    ops["a 10,000-row batch write"] = ["--child-write", str(task.parent / "calscore.duckdb")]
    ops["promoting recalibration (re-application included; + summary)"] = ["--child-recalibration", str(task)]
    ops["calscore recalibrate (no new labels)"] = cli + ["recalibrate", "--task", str(task)]
    ops[REAPPLY] = ["--child-reapply", str(task), str(REAPPLY_ROWS)]
    return ops


def run_size(rows: int, labels: int | None, folder: Path, env: dict) -> dict[str, tuple[float, float, float]]:
    start = time.perf_counter()
    # imported here: it brings numpy and the calibrators (~180 MB), which a view's process must not count
    from synthetic_warehouse import build_warehouse

    spec = build_warehouse(folder, rows, **({"labeled_share": labels / rows} if labels else {}))
    size_mb = spec.warehouse.path.stat().st_size / 2**20
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        n_labels = con.execute("select count(*) from labels").fetchone()[0]
    print(f"# {label(rows)}: built in {time.perf_counter() - start:.0f} s, {size_mb:.0f} MB on disk, {n_labels} labels",
          flush=True)
    results = {}
    for name, cmd in operations(folder / "task.toml", folder / "report").items():
        seconds, cpu, peak, stdout = measure(cmd, env)
        if name in VIEWS or cmd[0] in ("--child-write", "--child-reapply"):  # the child timed its own work
            seconds, cpu = list(json.loads(stdout.splitlines()[-1]).values())[:2]
        results[name] = (seconds, cpu, peak)
        said = f" {stdout.splitlines()[-1]}" if cmd[0] == "--child-recalibration" else ""
        if cmd[0] == "--child-reapply":
            said = f" {json.loads(stdout.splitlines()[-1])['rows'] / cpu:,.0f} rows/s CPU"
        print(f"#   {name}: {seconds:.2f} s (CPU {cpu:.2f} s), {peak:.0f} MB{said}", flush=True)
        if cmd[0] == "--child-recalibration":  # and the recalibration alone, its re-application apart
            own = json.loads(stdout.splitlines()[-1])["recalibrate"]
            results[RECALIBRATION] = (own["seconds"], own["cpu"], own["peak_mb"])
            print(f"#   {RECALIBRATION}: {own['seconds']:.2f} s (CPU {own['cpu']:.2f} s), {own['peak_mb']:.0f} MB",
                  flush=True)
    old = build_warehouse(folder / "schema-8", rows, **({"labeled_share": labels / rows} if labels else {}),
                          schema=8)
    results["migration from schema 8 (calscore init)"] = measure(["--child-migrate", str(old.source_path)], env)[:3]
    print(f"#   migration from schema 8: {results['migration from schema 8 (calscore init)'][0]:.2f} s", flush=True)
    shutil.rmtree(folder / "schema-8", ignore_errors=True)
    return results


def growth(values: list[float]) -> float:
    """The mean factor per 10x between the first and the last size."""
    return (values[-1] / values[0]) ** (1 / (len(values) - 1)) if len(values) > 1 and values[0] > 0 else math.nan


def table(sizes: list[int], results: dict[int, dict[str, tuple[float, float, float]]]) -> str:
    """One row per operation: wall seconds (CPU seconds), peak MB per size; the growth per 10x of time and memory."""
    head = "| operation | " + " | ".join(label(s) for s in sizes) + " | per 10x: time | per 10x: memory |"
    lines = [head, "| --- |" + " ---: |" * (len(sizes) + 2)]
    for name in results[sizes[0]]:
        cells = [f"{results[s][name][0]:.2f} s ({results[s][name][1]:.2f}), {results[s][name][2]:.0f} MB"
                 for s in sizes]
        factors = [growth([results[s][name][i] for s in sizes]) for i in (0, 2)]
        lines.append(f"| {name} | " + " | ".join(cells) + "".join(
            " | -" if math.isnan(f) else f" | {f:.2f}x" for f in factors) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["10k", "100k", "1M", "10M"], help="predictions per warehouse")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the warehouses")
    parser.add_argument("--labels", type=int, default=None,
                        help="hold the labeled rows at this number at every size (default: 2%% of the rows)")
    args = parser.parse_args(argv)
    sizes = sorted(parse_size(s) for s in args.sizes)
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="calscore-bench-"))
    if scratch.resolve().is_relative_to(ROOT):
        parser.error(f"--dir {scratch} is inside the repository; build the warehouses elsewhere")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1"}
    env.setdefault("PREFECT_HOME", str(scratch / "prefect"))
    print(f"# load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    try:
        results = {rows: run_size(rows, args.labels, scratch / label(rows), env) for rows in sizes}
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"# load average at end: {os.getloadavg()[0]:.1f}")
    print(table(sizes, results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measured"]:
        measured(sys.argv[2], sys.argv[3:])
    else:
        main()
