"""The batch ledger (table `batches`): which input batches are done, failed or pending for a task.

A batch's identity is (key, content hash); the `uri` column holds the key (the path
relative to the input location). The writer records a batch as done in the same
transaction as its rows; a batch that cannot be read or scored is recorded as failed
with its error and stays failed -- later runs do not try it again -- until its content
changes (a new batch) or an operator asks for a retry (`retry_failed`). `pending` and
`backfill` decide what a run scores.
"""
from __future__ import annotations

from calscore.jobs.batches.files import BatchRef, batch_ref
from calscore.jobs.common.clock import utcnow
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.statements import statement


def record_batch(con, spec: TaskSpec, ref: BatchRef, run_id: str, status: str, counts: tuple, error: str | None) -> None:
    """Ledger row for a batch; `counts` is (rows_in, rows_scored, rows_quarantined)."""
    rows_in, rows_scored, rows_quarantined = counts
    con.execute(
        statement("batches_record"),
        {"task_name": spec.name, "uri": ref.key, "content_hash": ref.content_hash, "task_version": spec.task_version,
         "status": status, "rows_in": rows_in, "rows_scored": rows_scored, "rows_quarantined": rows_quarantined,
         "run_id": run_id, "error": error, "finished_at": utcnow()},
    )


def already_done(con, spec: TaskSpec, ref: BatchRef) -> bool:
    return con.execute(
        "SELECT count(*) FROM batches WHERE task_name = ? AND uri = ? AND content_hash = ?"
        " AND status = 'done' AND task_version = ?",
        [spec.name, ref.key, ref.content_hash, spec.task_version],
    ).fetchall()[0][0] > 0


def ledger_states(con, spec: TaskSpec) -> dict[tuple[str, str], tuple[str, str | None]]:
    """{(key, content hash): (status, error)} of every batch the ledger knows for this task."""
    rows = con.execute("SELECT uri, content_hash, status, error FROM batches WHERE task_name = ?", [spec.name])
    return {(key, digest): (status, error) for key, digest, status, error in rows.fetchall()}


def record_failed_batch(spec: TaskSpec, ref: BatchRef, run_id: str, error: str) -> None:
    """Mark a batch failed (nothing of it is written); it stays failed until retried or changed."""
    with writer(spec.warehouse.path) as con:
        con.execute("BEGIN TRANSACTION")
        record_batch(con, spec, ref, run_id, "failed", (None, 0, 0), error)
        con.execute("COMMIT")


def pending(spec: TaskSpec, refs: list[BatchRef]) -> list[BatchRef]:
    """Batches the ledger has neither completed nor failed for this task (key: key + content hash).

    A batch done under an older task_version is not pending: nothing is rescored
    silently after a prompt or model change (see `backfill`)."""
    if not refs:
        return []
    with writer(spec.warehouse.path) as con:
        settled = {k for k, (status, _) in ledger_states(con, spec).items() if status in ("done", "failed")}
    return [r for r in refs if (r.key, r.content_hash) not in settled]


def failed_earlier(spec: TaskSpec, refs: list[BatchRef]) -> list[str]:
    """Keys of these batches the ledger holds as failed (they stay failed until retried or changed)."""
    with writer(spec.warehouse.path) as con:
        states = ledger_states(con, spec)
    return [r.key for r in refs if states.get((r.key, r.content_hash), ("pending",))[0] == "failed"]


def retry_failed(spec: TaskSpec, keys: list[str] | None = None) -> list[str]:
    """Make failed batches pending again (all, or those with these keys); return their keys."""
    with writer(spec.warehouse.path) as con:
        rows = con.execute(
            "UPDATE batches SET status = 'retry' WHERE task_name = ? AND status = 'failed'"
            " AND (? IS NULL OR list_contains(?, uri)) RETURNING uri",
            [spec.name, keys, keys],
        ).fetchall()
    return sorted(key for (key,) in rows)


def backfill(spec: TaskSpec, since) -> list[BatchRef]:
    """Batches completed since `since` under another task_version, for an explicit rescore."""
    with writer(spec.warehouse.path) as con:
        rows = con.execute(
            statement("batches_backfill"),
            {"task_name": spec.name, "since": since, "task_version": spec.task_version},
        ).fetchall()
    # a file rewritten since is a new batch for the nightly run, not a backfill; one that cannot be read now
    # is in the backfill, to fail alone with its reason
    now = [(batch_ref(spec.input, key, digest).now(), digest) for key, digest in rows]
    return [ref for ref, digest in now if ref is not None and (ref.unreadable or ref.content_hash == digest)]
