"""The single writer: load staged batch results into DuckDB, one transaction per batch.

Predictions, quarantine rows and the ledger status commit together or not at all, so a crash at any point leaves the batch either fully
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
from calscore.jobs.warehouse.statements import statement


def _insert_batch(con, spec: TaskSpec, staged: StagedBatch, run_id: str) -> dict:
    """Quarantine rows, predictions and the ledger row, inside the caller's transaction."""
    ref = BatchRef(staged.key, staged.content_hash)
    quarantine = pq.read_table(staged.quarantine_path)
    con.register("staged_quarantine", quarantine)
    con.execute(
        statement("quarantine_insert_staged"),
        {"task_name": spec.name, "task_version": spec.task_version, "batch_uri": ref.key,
         "batch_hash": ref.content_hash, "run_id": run_id, "quarantined_at": utcnow()},
    )
    written = late_duplicates = 0
    if staged.predictions_path:
        con.register("staged_predictions", pq.read_table(staged.predictions_path))
        # A row scored before (another batch, an earlier night): quarantine it, keep the first score.
        late_duplicates = con.execute(
            statement("quarantine_insert_already_scored"),
            {"reason": ALREADY_SCORED, "run_id": run_id, "quarantined_at": utcnow()},
        ).fetchall()[0][0]
        written = con.execute(statement("predictions_insert_new"), {"written_at": utcnow()}).fetchall()[0][0]
    counts = (staged.rows_in, written, quarantine.num_rows + late_duplicates)
    record_batch(con, spec, ref, run_id, "done", counts, None)
    return {"rows_scored": written, "rows_quarantined": counts[2], "skipped": False}


def write_staged(spec: TaskSpec, staged: StagedBatch, run_id: str, wait_seconds: float | None = None) -> dict:
    """Load one staged batch; return the counts actually written. Safe to call twice."""
    kwargs = {} if wait_seconds is None else {"wait_seconds": wait_seconds}
    with writer(spec.warehouse.path, **kwargs) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            if already_done(con, spec, BatchRef(staged.key, staged.content_hash)):
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


