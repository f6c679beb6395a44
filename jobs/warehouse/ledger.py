"""The batch ledger (table `batches`): which input batches are done, failed or pending for a task.

A batch's identity is (uri, content hash). The writer records a batch as done in
the same transaction as its rows; a batch that cannot be read is recorded as
failed with its error; `pending` and `backfill` decide what a run scores.
"""
from __future__ import annotations

from pathlib import Path

from calscore.jobs.batches.files import BatchRef
from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.hashing import sha256_of
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.runs import heartbeat
from calscore.jobs.warehouse.statements import statement


def record_batch(con, spec: TaskSpec, ref: BatchRef, run_id: str, status: str, counts: tuple, error: str | None) -> None:
    """Ledger row for a batch; `counts` is (rows_in, rows_scored, rows_quarantined)."""
    rows_in, rows_scored, rows_quarantined = counts
    con.execute(
        statement("batches_record"),
        {"task_name": spec.name, "uri": ref.uri, "content_hash": ref.content_hash, "task_version": spec.task_version,
         "status": status, "rows_in": rows_in, "rows_scored": rows_scored, "rows_quarantined": rows_quarantined,
         "run_id": run_id, "error": error, "finished_at": utcnow()},
    )


def already_done(con, spec: TaskSpec, ref: BatchRef) -> bool:
    return con.execute(
        "SELECT count(*) FROM batches WHERE task_name = ? AND uri = ? AND content_hash = ?"
        " AND status = 'done' AND task_version = ?",
        [spec.name, ref.uri, ref.content_hash, spec.task_version],
    ).fetchall()[0][0] > 0


def record_failed_batch(spec: TaskSpec, ref: BatchRef, run_id: str, error: str) -> None:
    """Mark a batch failed (nothing of it is written); a later run tries it again."""
    with writer(spec.warehouse.path) as con:
        con.execute("BEGIN TRANSACTION")
        record_batch(con, spec, ref, run_id, "failed", (None, 0, 0), error)
        heartbeat(con, run_id)
        con.execute("COMMIT")


def pending(spec: TaskSpec, refs: list[BatchRef]) -> list[BatchRef]:
    """Batches the ledger has not completed for this task (key: uri + content hash).

    A batch done under an older task_version is not pending: nothing is rescored
    silently after a prompt or model change (see `backfill`)."""
    if not refs:
        return []
    with writer(spec.warehouse.path) as con:
        done = {
            (u, h)
            for u, h in con.execute(
                "SELECT uri, content_hash FROM batches WHERE task_name = ? AND status = 'done'", [spec.name]
            ).fetchall()
        }
    return [r for r in refs if (r.uri, r.content_hash) not in done]


def backfill(spec: TaskSpec, since) -> list[BatchRef]:
    """Batches completed since `since` under another task_version, for an explicit rescore."""
    with writer(spec.warehouse.path) as con:
        rows = con.execute(
            statement("batches_backfill"),
            {"task_name": spec.name, "since": since, "task_version": spec.task_version},
        ).fetchall()
    # a file rewritten since is a new batch for the nightly run, not a backfill
    return [BatchRef(u, h) for u, h in rows if Path(u).is_file() and sha256_of(Path(u)) == h]
