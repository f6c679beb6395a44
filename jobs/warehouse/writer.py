"""The single writer: load staged batch results into DuckDB, one transaction per batch.

Predictions (with their counts and the copies of labeled rows: jobs/warehouse/derived.py), quarantine rows
and the ledger status commit together or not at all, so a crash at any point leaves the batch either fully
written or not written, and a re-run writes every row exactly once. The staged parts are loaded one at a time
(memory flat in the batch's size; their ids all at once, checked against the predictions in one pass), and the
warehouse is opened only for the seconds a batch takes to write.
"""
from __future__ import annotations

import pyarrow as pa

from calscore.jobs.batches.files import BatchRef
from calscore.jobs.batches.quarantine import ALREADY_SCORED
from calscore.jobs.batches.staged import StagedBatch
from calscore.jobs.common.clock import utcnow
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.derived import count_decisions
from calscore.jobs.warehouse.ledger import already_done, record_batch
from calscore.jobs.warehouse.statements import statement


def check_scored_before(con, keys: pa.Table) -> None:
    """The temporary table `scored_before`: which of a batch's ids (`keys`: task_version, row_id of every part)
    this task_version has scored before, in one pass over the predictions (staged_scored_before)."""
    con.register("staged_keys", keys)
    con.execute(statement("staged_scored_before"))
    con.unregister("staged_keys")


def insert_predictions(con, predictions: pa.Table, run_id: str) -> tuple[int, int]:
    """One part's staged predictions, after `check_scored_before` for its batch: rows scored before (another
    batch, an earlier night) are quarantined, keeping the first score, the others written; (written, quarantined)."""
    con.register("staged_predictions", predictions)
    late_duplicates = con.execute(
        statement("quarantine_insert_already_scored"),
        {"reason": ALREADY_SCORED, "run_id": run_id, "quarantined_at": utcnow()},
    ).fetchall()[0][0]
    con.execute("CREATE OR REPLACE TEMP TABLE new_predictions AS FROM predictions WITH NO DATA")
    con.execute(statement("predictions_new_rows"), {"written_at": utcnow(), "run_id": run_id})
    con.unregister("staged_predictions")
    written = con.execute(statement("predictions_insert_new")).fetchall()[0][0]
    count_decisions(con, con.table("new_predictions"), +1)
    con.execute(statement("labeled_predictions_insert_new"))
    con.execute("DROP TABLE new_predictions")
    return written, late_duplicates


def _insert_part(con, spec: TaskSpec, staged: StagedBatch, part: str, run_id: str) -> tuple[int, int]:
    """One staged part's quarantine rows and new predictions; (written, quarantined)."""
    quarantine = staged.read_part(part, "quarantine")
    con.register("staged_quarantine", quarantine)
    con.execute(
        statement("quarantine_insert_staged"),
        {"task_name": spec.name, "task_version": spec.task_version, "batch_uri": staged.key,
         "batch_hash": staged.content_hash, "run_id": run_id, "quarantined_at": utcnow()},
    )
    con.unregister("staged_quarantine")
    predictions = staged.read_part(part, "predictions")
    if predictions is None:
        return 0, quarantine.num_rows
    written, late_duplicates = insert_predictions(con, predictions, run_id)
    return written, quarantine.num_rows + late_duplicates


def _insert_batch(con, spec: TaskSpec, staged: StagedBatch, run_id: str) -> dict:
    """Every part of the batch, and the ledger row, inside the caller's transaction (a part at a time in memory)."""
    check_scored_before(con, staged.keys())
    written = quarantined = 0
    for part in staged.parts:
        w, q = _insert_part(con, spec, staged, part, run_id)
        written, quarantined = written + w, quarantined + q
    con.execute("DROP TABLE scored_before")
    counts = (staged.rows_in, written, quarantined)
    record_batch(con, spec, BatchRef(staged.key, staged.content_hash), run_id, "done", counts, None)
    return {"rows_scored": written, "rows_quarantined": quarantined, "skipped": False}


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
    staged.remove()
    return result


