"""The single writer: load staged batch results into DuckDB, one transaction per batch.

Predictions, quarantine rows, the ledger status and the run heartbeat commit
together or not at all, so a crash at any point leaves the batch either fully
written or not written, and a re-run writes every row exactly once. The
warehouse is opened only for the seconds a batch takes to write.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from calscore.jobs.batches.files import ALREADY_SCORED, BatchRef
from calscore.jobs.scoring.fingerprint import sha256_of
from calscore.jobs.warehouse.runs import heartbeat
from calscore.jobs.spec import TaskSpec
from calscore.jobs.batches.stage import StagedBatch
from calscore.jobs.warehouse.connection import utcnow, writer

_PREDICTION_COLUMNS = (
    "task_version, row_id, task_name, run_id, batch_uri, batch_hash, model, text, label_logprobs,"
    " coverage, total_probability, raw_label, raw_confidence, truncated, calibrator_version, label,"
    " confidence, bucket, bucket_basis, bucket_reason, segment, metadata, scored_at"
)


def _ledger(con, spec: TaskSpec, ref: BatchRef, run_id: str, status: str, counts: tuple, error: str | None) -> None:
    con.execute(
        "INSERT OR REPLACE INTO batches (task_name, uri, content_hash, task_version, status, rows_in,"
        " rows_scored, rows_quarantined, run_id, error, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [spec.name, ref.uri, ref.content_hash, spec.task_version, status, *counts, run_id, error, utcnow()],
    )


def _already_done(con, spec: TaskSpec, ref: BatchRef) -> bool:
    return con.execute(
        "SELECT count(*) FROM batches WHERE task_name = ? AND uri = ? AND content_hash = ?"
        " AND status = 'done' AND task_version = ?",
        [spec.name, ref.uri, ref.content_hash, spec.task_version],
    ).fetchall()[0][0] > 0


def _insert_batch(con, spec: TaskSpec, staged: StagedBatch, run_id: str) -> dict:
    """Quarantine rows, predictions, ledger and heartbeat, inside the caller's transaction."""
    ref = BatchRef(staged.uri, staged.content_hash)
    quarantine = pq.read_table(staged.quarantine_path)
    con.register("staged_quarantine", quarantine)
    con.execute(
        "INSERT INTO quarantine SELECT ?, ?, ?, ?, row_index, row_id, reason, detail, ?, ?"
        " FROM staged_quarantine ON CONFLICT DO NOTHING",
        [spec.name, spec.task_version, ref.uri, ref.content_hash, run_id, utcnow()],
    )
    written = late_duplicates = 0
    if staged.predictions_path:
        con.register("staged_predictions", pq.read_table(staged.predictions_path))
        # A row another batch scored after this one was staged: quarantine it, keep the first.
        late_duplicates = con.execute(
            "INSERT INTO quarantine SELECT s.task_name, s.task_version, s.batch_uri, s.batch_hash,"
            " s.row_index, s.row_id, ?, 'scored by another batch while this one was staged', ?, ?"
            " FROM staged_predictions s JOIN predictions p USING (task_version, row_id)"
            " ON CONFLICT DO NOTHING",
            [ALREADY_SCORED, run_id, utcnow()],
        ).fetchall()[0][0]
        written = con.execute(
            f"INSERT INTO predictions ({_PREDICTION_COLUMNS}, written_at)"
            f" SELECT {_PREDICTION_COLUMNS}, ? FROM staged_predictions s"
            " WHERE NOT EXISTS (SELECT 1 FROM predictions p"
            "   WHERE p.task_version = s.task_version AND p.row_id = s.row_id)",
            [utcnow()],
        ).fetchall()[0][0]
    counts = (staged.rows_in, written, quarantine.num_rows + late_duplicates)
    _ledger(con, spec, ref, run_id, "done", counts, None)
    heartbeat(con, run_id)
    return {"rows_scored": written, "rows_quarantined": counts[2], "skipped": False}


def write_staged(spec: TaskSpec, staged: StagedBatch, run_id: str, wait_seconds: float | None = None) -> dict:
    """Load one staged batch; return the counts actually written. Safe to call twice."""
    kwargs = {} if wait_seconds is None else {"wait_seconds": wait_seconds}
    with writer(spec.warehouse.path, **kwargs) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            if _already_done(con, spec, BatchRef(staged.uri, staged.content_hash)):
                result = {"rows_scored": 0, "rows_quarantined": 0, "skipped": True}
            else:
                result = _insert_batch(con, spec, staged, run_id)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    # the manifest goes first: without it the data files are never loaded again
    for path in (staged.manifest_path, staged.predictions_path, staged.quarantine_path):
        if path:
            Path(path).unlink(missing_ok=True)
    return result


def record_failed_batch(spec: TaskSpec, ref: BatchRef, run_id: str, error: str) -> None:
    """Mark a batch failed (nothing of it is written); a later run tries it again."""
    with writer(spec.warehouse.path) as con:
        con.execute("BEGIN TRANSACTION")
        _ledger(con, spec, ref, run_id, "failed", (None, 0, 0), error)
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
            "SELECT uri, content_hash FROM batches WHERE task_name = ? AND status = 'done'"
            " AND finished_at >= ? AND task_version <> ? ORDER BY uri",
            [spec.name, since, spec.task_version],
        ).fetchall()
    # a file rewritten since is a new batch for the nightly run, not a backfill
    return [BatchRef(u, h) for u, h in rows if Path(u).is_file() and sha256_of(Path(u)) == h]
