"""`calscore status`: what has been done for a task, read-only."""
from __future__ import annotations

from calscore.calibration_store.store import list_calibrators
from calscore.jobs.batches.files import discover
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.statements import statement


def task_status(spec: TaskSpec) -> str:
    """A short plain-text status of the task's batches, runs and calibrator."""
    refs = discover(spec.input.location)
    with reader(spec.warehouse.path) as con:
        ledger = {
            (u, h): s
            for u, h, s in con.execute(
                "SELECT uri, content_hash, status FROM batches WHERE task_name = ?", [spec.name]
            ).fetchall()
        }
        failed = con.execute(statement("batches_failed"), {"task_name": spec.name}).fetchall()
        rows = con.execute(
            "SELECT count(*) FROM predictions WHERE task_version = ?", [spec.task_version]
        ).fetchall()[0][0]
        last_run = con.execute(statement("runs_latest"), {"task_name": spec.name}).fetchall()
        champion = [(c["version"], c["method"], c["n_labels"], c["created_at"])
                    for c in list_calibrators(con, task_version=spec.task_version) if c["status"] == "champion"]
        snapshot = con.execute(
            statement("reliability_snapshots_latest_calibrated"), {"task_version": spec.task_version}
        ).fetchall()
    last_run, champion, snapshot = (rows[0] if rows else None for rows in (last_run, champion, snapshot))
    done = sum(1 for r in refs if ledger.get((r.uri, r.content_hash)) == "done")
    pending = len(refs) - done
    lines = [
        f"task {spec.name}  task_version {spec.task_version}  warehouse {spec.warehouse.path}",
        f"batches: {done} done, {pending} pending, {len(failed)} failed; {rows} predictions for this task_version",
    ]
    for uri, error in failed:
        lines.append(f"  failed: {error or uri}")
    if last_run:
        run_id, kind, state, started, finished = last_run
        lines.append(f"last run: {run_id} ({kind}) {state}, started {started:%Y-%m-%d %H:%M:%S}"
                     + (f", finished {finished:%H:%M:%S}" if finished else ""))
    else:
        lines.append("last run: none yet")
    if champion:
        version, method, n_labels, created = champion
        lines.append(f"champion calibrator: {version} ({method}, {n_labels} labels, {created:%Y-%m-%d %H:%M})")
    else:
        lines.append("champion calibrator: none (buckets use raw confidence)")
    if snapshot:
        created, n, acc, ece, nll = snapshot
        lines.append(f"last snapshot: {created:%Y-%m-%d %H:%M}  n={n}  accuracy={acc:.3f}  ECE={ece:.3f}  NLL={nll:.3f}")
    return "\n".join(lines)
