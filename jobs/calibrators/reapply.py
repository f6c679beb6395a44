"""Re-application: a new champion decides recent predictions again, in bounded, resumable steps.

    queue_reapplication(con, spec, version, run_id)   # in the promotion's transaction: the job is part of it
    continue_reapplications(spec)                      # then, and at the start of the next recalibration

A promotion records a re-application job (table `reapplications`: the champion, the window of the last
`[calibration] reapply_days`, the row cap `reapply_max_rows`) in its own transaction, superseding any
unfinished job of an earlier champion. The job then walks the window's table rows in write order (rowid),
newest first, `REAPPLY_CHUNK_ROWS` at a time, each slice its own transaction: rows of the slice whose current
decision is not yet the champion's are decided, appended to `decisions`, copied onto their predictions by rowid,
and the job's `rows_done` moves on. A slice reads and writes its own row groups only, so a row costs the same
whatever the table holds; memory is one slice, whatever the window holds. A SIGKILL loses at most the slice in
flight (rolled back); the next run walks the window again, where the rows committed slices decided drop out, so
every row of the window is decided by the new champion exactly once.

Until a job is done part of the window is still decided by the previous champion: each row's
`calibrator_version` (current_decisions) says which, `reapplications.status` = 'pending' says the job is not
finished, and `calscore status` prints its progress.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pyarrow as pa

from calscore.calibration_store.apply import logprob_matrix
from calscore.calibration_store.document import FLOOR_KEY, load_document
from calscore.calibration_store.store import document
from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.label_maps import label_map
from calscore.jobs.decisions import AppliedCalibrator, agreement_signal, decide
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.statements import statement


# Rows re-decided per transaction: memory is one chunk, and a kill loses at most one.
REAPPLY_CHUNK_ROWS = 50_000


def write_decisions(con, decided: pa.Table) -> None:
    """Append re-applied decisions (one per prediction, with its `table_row`: the prediction's rowid read in this
    transaction) and make them their rows' current decision, in the caller's transaction: `decisions` keeps every
    one, predictions carry the newest (migration 004)."""
    con.register("decided", decided)
    con.execute(statement("decisions_insert"))
    con.execute(statement("predictions_copy_reapplied"))
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
        job = con.execute("SELECT calibrator_version, run_id, since, max_rows, rows_done FROM reapplications "
                          "WHERE task_version = ? AND status = 'pending'", [spec.task_version]).fetchone()
        if job is None:
            return 0
        version, run_id, since, cap, done = job
        # the champion's document: its calibrator and the coverage floor it applies (documents carry both)
        doc = document(con, version, spec.task_version)
        applied = AppliedCalibrator(version, load_document(doc, spec.task_version), doc.get(FLOOR_KEY))
        # The window's table rows, newest written first: rows written after this (a scoring run between a kill
        # and the resume) were decided by this champion already, so the job never needs to look above `upper`.
        first, upper = con.execute("SELECT coalesce(min(rowid), 0), coalesce(max(rowid) + 1, 0) FROM predictions "
                                   "WHERE task_version = ? AND scored_at >= ?", [spec.task_version, since]).fetchone()
    decided = 0
    while True:
        lower = max(first, upper - REAPPLY_CHUNK_ROWS)
        # a connection per chunk: closing it hands DuckDB's cached pages back, so memory stays one chunk's
        with writer(spec.warehouse.path) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                scores = con.sql(statement("predictions_to_reapply"), params={
                    "task_version": spec.task_version, "since": since, "calibrator_version": version,
                    "lower": lower, "upper": upper,
                    "limit": REAPPLY_CHUNK_ROWS if cap is None else max(cap - done, 0)}).to_arrow_table()
                if scores.num_rows:
                    write_decisions(con, _decided_rows(spec, applied, run_id, scores))
                done += scores.num_rows
                finished = lower <= first or (cap is not None and done >= cap)
                con.execute("UPDATE reapplications SET rows_done = ?, status = ?, finished_at = ? WHERE "
                            "task_version = ? AND calibrator_version = ? AND run_id = ?",
                            [done, "done" if finished else "pending", utcnow() if finished else None,
                             spec.task_version, version, run_id])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        decided += scores.num_rows
        upper = lower
        if say is not None and (scores.num_rows or finished):
            say(f"re-applied champion {version} to {done} row(s)" + (" (done)" if finished else ""))
        if finished:
            return decided
