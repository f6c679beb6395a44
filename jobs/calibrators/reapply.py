"""Re-application: a new champion decides recent predictions again, appended (never overwriting), a chunk at a time.

    n = reapply(con, spec, calibrator, version, run_id)   # in the caller's transaction

`decisions` keeps every re-applied decision; each prediction carries its newest (migration 004), which
is what the analyst views read.
"""
from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

from calscore.calibration_store.apply import logprob_matrix
from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.label_maps import label_map
from calscore.jobs.decisions import AppliedCalibrator, agreement_signal, decide
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.statements import statement


# Rows re-decided per round: re-applying to a week of ten million rows a night never holds the week in memory.
REAPPLY_CHUNK_ROWS = 100_000


def write_decisions(con, decided: pa.Table) -> None:
    """Append re-applied decisions (one per prediction) and make them their rows' current decision, in the
    caller's transaction: `decisions` keeps every one, predictions carry the newest (migration 004)."""
    con.register("decided", decided)
    con.execute(statement("decisions_insert"))
    con.execute(statement("predictions_copy_reapplied"))
    con.unregister("decided")


def _decided_rows(spec: TaskSpec, calibrator, version: str, run_id: str, scores: pa.RecordBatch) -> pa.Table:
    decided = decide(spec, logprob_matrix(scores.column("label_logprobs"), spec.label_names),
                     scores.column("coverage").to_numpy(), AppliedCalibrator(version, calibrator),
                     agreement_signal(spec, scores))
    n = scores.num_rows
    return pa.table({
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


def reapply(con, spec: TaskSpec, calibrator, version: str, run_id: str) -> int:
    """Append decisions by the new champion for recent predictions (never overwrite), a chunk at a time."""
    if spec.calibration.reapply_days == 0:
        return 0
    since = utcnow() - timedelta(days=spec.calibration.reapply_days)
    # Read through a cursor (its own snapshot of the committed rows), write through `con` (the caller's
    # transaction): a result being read cannot share its connection with the writes.
    cursor = con.cursor()
    try:
        chunks = cursor.sql(
            statement("predictions_to_reapply"),
            params={"task_version": spec.task_version, "since": since, "calibrator_version": version},
        ).to_arrow_reader(REAPPLY_CHUNK_ROWS)
        n = 0
        for scores in chunks:
            write_decisions(con, _decided_rows(spec, calibrator, version, run_id, scores))
            n += scores.num_rows
    finally:
        cursor.close()
    return n
