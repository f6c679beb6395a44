"""The single writer: load staged batch results into DuckDB, one transaction per batch.

Predictions, quarantine rows, the ledger status and the run heartbeat commit
together or not at all, so a crash at any point leaves the batch either fully
written or not written, and a re-run writes every row exactly once. The
warehouse is opened only for the seconds a batch takes to write.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from calscore.jobs.batches.files import BatchRef
from calscore.jobs.batches.quarantine import ALREADY_SCORED
from calscore.jobs.batches.staged import StagedBatch
from calscore.jobs.common.clock import utcnow
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.ledger import already_done, record_batch
from calscore.jobs.warehouse.runs import heartbeat


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
        # A row scored before (another batch, an earlier night): quarantine it, keep the first score.
        late_duplicates = con.execute(
            "INSERT INTO quarantine SELECT s.task_name, s.task_version, s.batch_uri, s.batch_hash,"
            " s.row_index, s.row_id, ?, 'already scored for this task_version', ?, ?"
            " FROM staged_predictions s JOIN predictions p USING (task_version, row_id)"
            " ON CONFLICT DO NOTHING",
            [ALREADY_SCORED, run_id, utcnow()],
        ).fetchall()[0][0]
        written = con.execute(
            "INSERT INTO predictions BY NAME SELECT * EXCLUDE (row_index), ? AS written_at FROM staged_predictions s"
            " WHERE NOT EXISTS (SELECT 1 FROM predictions p"
            "   WHERE p.task_version = s.task_version AND p.row_id = s.row_id)",
            [utcnow()],
        ).fetchall()[0][0]
    counts = (staged.rows_in, written, quarantine.num_rows + late_duplicates)
    record_batch(con, spec, ref, run_id, "done", counts, None)
    heartbeat(con, run_id)
    return {"rows_scored": written, "rows_quarantined": counts[2], "skipped": False}


def write_staged(spec: TaskSpec, staged: StagedBatch, run_id: str, wait_seconds: float | None = None) -> dict:
    """Load one staged batch; return the counts actually written. Safe to call twice."""
    kwargs = {} if wait_seconds is None else {"wait_seconds": wait_seconds}
    with writer(spec.warehouse.path, **kwargs) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            if already_done(con, spec, BatchRef(staged.uri, staged.content_hash)):
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


