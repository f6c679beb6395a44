"""Re-application: a new champion decides recent predictions again, in bounded, resumable steps.

    queue_reapplication(con, spec, version, run_id)   # in the promotion's transaction: the job is part of it
    continue_reapplications(spec)                      # then, and at the start of the next recalibration

A promotion records a re-application job (table `reapplications`: the champion, the window of the last
`[calibration] reapply_days`, the row cap `reapply_max_rows`) in its own transaction, superseding any
unfinished job of an earlier champion. The job then walks the window's table rows in write order (rowid),
newest first, `REAPPLY_CHUNK_ROWS` at a time, each slice its own transaction: rows of the slice whose current
decision is not yet the champion's are decided, appended to `decisions`, copied onto their predictions by rowid,
and the job's `rows_done` moves on. A slice reads and writes its own row groups only, so a row costs the same
whatever the table holds; memory is what a few slices leave cached (a connection serves `CHUNKS_PER_CONNECTION`
of them), whatever the window holds. A SIGKILL loses at most the slice in flight (rolled back); the next run walks
the window again, where the rows committed slices decided drop out, so every row of the window is decided by the
new champion exactly once.

Until a job is done part of the window is still decided by the previous champion: each row's
`calibrator_version` (current_decisions) says which, `reapplications.status` = 'pending' says the job is not
finished, and `calscore status` prints its progress.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from calscore.calibration_store.apply import logprob_matrix
from calscore.calibration_store.document import FLOOR_KEY, load_document
from calscore.calibration_store.store import document
from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.label_maps import label_map
from calscore.jobs.decisions import AppliedCalibrator, agreement_signal, decide
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.derived import count_decisions
from calscore.jobs.warehouse.statements import statement


# Rows re-decided per transaction: a kill loses at most one chunk.
REAPPLY_CHUNK_ROWS = 50_000
# Chunks per connection: memory stays what this many chunks leave cached (~0.5 GB at ten million predictions).
CHUNKS_PER_CONNECTION = 10


def write_decisions(con, decided: pa.Table) -> None:
    """Append re-applied decisions (one per prediction, with its `table_row`: the prediction's rowid read in this
    transaction) and make them their rows' current decision, in the caller's transaction: `decisions` keeps every
    one, predictions carry the newest (migration 004), their counts move to it and the copies of the labeled
    ones are replaced (migration 016)."""
    con.register("decided", decided)
    low, high = pc.min_max(decided.column("table_row")).values()
    bounds = {"lower": low.as_py(), "upper": high.as_py()}  # of the rowids: the scans read the chunk's row groups
    con.execute(statement("decisions_insert"))
    # the rows' counts out under their decision before, in again under the one they have after (read back: an
    # older decision replaces nothing)
    counted = statement("predictions_reapplied_counted")
    count_decisions(con, con.sql(counted, params=bounds).to_arrow_table(), -1)
    con.execute(statement("predictions_copy_reapplied"))
    count_decisions(con, con.sql(counted, params=bounds).to_arrow_table(), +1)
    con.execute(statement("labeled_predictions_drop_reapplied"))
    con.execute(statement("labeled_predictions_copy_reapplied"), bounds)
    con.unregister("decided")


def _decided_rows(spec: TaskSpec, applied: AppliedCalibrator, run_id: str, scores: pa.RecordBatch) -> pa.Table:
    decided = decide(spec, logprob_matrix(scores.column("label_logprobs"), spec.label_names),
                     scores.column("coverage").to_numpy(), applied, agreement_signal(spec, scores))
    version = applied.version
    n = scores.num_rows
    return pa.table({
        "table_row": scores.column("table_row"),
        "task_version": [spec.task_version] * n,
        "row_id": scores.column("row_id"),
        "calibrator_version": [version] * n,
        "label": pa.array(decided.label, pa.string()),
        "confidence": decided.confidence,
        "calibrated_probs": label_map(decided.probs, spec.label_names),
        "bucket": pa.array(decided.bucket, pa.string()),
        "bucket_reason": pa.array(decided.reason, pa.string()),
        "run_id": [run_id] * n,
        "decided_at": pa.array([utcnow()] * n, pa.timestamp("us", tz="UTC")),
    })


def queue_reapplication(con, spec: TaskSpec, version: str, run_id: str) -> bool:
    """Record a re-application job for a newly promoted champion, in the caller's transaction, superseding any
    unfinished job of this task_version; False when re-application is off (`reapply_days` = 0)."""
    policy = spec.calibration
    if policy.reapply_days == 0:
        return False
    con.execute("UPDATE reapplications SET status = 'superseded', finished_at = ? "
                "WHERE task_version = ? AND status = 'pending'", [utcnow(), spec.task_version])
    con.execute("INSERT INTO reapplications VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, NULL)",
                [spec.task_version, version, run_id, utcnow() - timedelta(days=policy.reapply_days),
                 policy.reapply_max_rows, utcnow()])
    return True


def continue_reapplications(spec: TaskSpec, say: Callable[[str], None] | None = None) -> int:
    """Run this task_version's unfinished re-application job, if any, to its end, a chunk (a transaction) at a
    time; return the rows it decided in this call. `say` gets one line per chunk."""
    with writer(spec.warehouse.path) as con:
        found = con.execute("SELECT calibrator_version, run_id, since, max_rows, rows_done FROM reapplications "
                            "WHERE task_version = ? AND status = 'pending'", [spec.task_version]).fetchone()
        if found is None:
            return 0
        version, run_id, since, cap, done = found
        # the champion's document: its calibrator and the coverage floor it applies (documents carry both)
        doc = document(con, version, spec.task_version)
        applied = AppliedCalibrator(version, load_document(doc, spec.task_version), doc.get(FLOOR_KEY))
        # The window's table rows, newest written first: rows written after this (a scoring run between a kill
        # and the resume) were decided by this champion already, so the job never needs to look above `upper`.
        first, upper = con.execute("SELECT coalesce(min(rowid), 0), coalesce(max(rowid) + 1, 0) FROM predictions "
                                   "WHERE task_version = ? AND scored_at >= ?", [spec.task_version, since]).fetchone()
    job = _Job(run_id, since, cap, first, done)
    decided, finished = 0, False
    while not finished:
        # a connection per stretch of chunks: closing it hands DuckDB's cached pages back, so memory stays a
        # stretch's; a connection per chunk cost a fifth of the rate (opening, and a checkpoint at each close)
        with writer(spec.warehouse.path) as con:
            for _ in range(CHUNKS_PER_CONNECTION):
                lower = max(job.first, upper - REAPPLY_CHUNK_ROWS)
                rows, finished = _reapply_chunk(con, spec, applied, job, lower, upper)
                decided, upper = decided + rows, lower
                if say is not None and (rows or finished):
                    say(f"re-applied champion {version} to {job.done} row(s)" + (" (done)" if finished else ""))
                if finished:
                    break
    return decided


@dataclass
class _Job:
    """A pending re-application job as `_reapply_chunk` needs it; `done` counts its committed rows."""

    run_id: str
    since: Any
    cap: int | None
    first: int
    done: int


def _reapply_chunk(con, spec: TaskSpec, applied: AppliedCalibrator, job: _Job, lower: int,
                   upper: int) -> tuple[int, bool]:
    """One transaction: the window's rows in table rows [lower, upper) that the champion has not decided yet are
    decided, and the job's progress is recorded with them; (rows decided, whether the job is finished)."""
    con.execute("BEGIN TRANSACTION")
    try:
        scores = con.sql(statement("predictions_to_reapply"), params={
            "task_version": spec.task_version, "since": job.since, "calibrator_version": applied.version,
            "lower": lower, "upper": upper,
            "limit": REAPPLY_CHUNK_ROWS if job.cap is None else max(job.cap - job.done, 0)}).to_arrow_table()
        if scores.num_rows:
            write_decisions(con, _decided_rows(spec, applied, job.run_id, scores))
        done = job.done + scores.num_rows
        finished = lower <= job.first or (job.cap is not None and done >= job.cap)
        con.execute("UPDATE reapplications SET rows_done = ?, status = ?, finished_at = ? WHERE "
                    "task_version = ? AND calibrator_version = ? AND run_id = ?",
                    [done, "done" if finished else "pending", utcnow() if finished else None,
                     spec.task_version, applied.version, job.run_id])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    job.done = done
    return scores.num_rows, finished
