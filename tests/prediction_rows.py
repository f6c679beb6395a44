"""Predictions and audit labels with chosen coverages and confidences, written into a real (migrated) warehouse
for the tests that need exact shares and counts: no model, no calibrator, buckets on the raw confidence."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from calscore.jobs.common.clock import utcnow
from calscore.jobs.decisions import assign_buckets
from calscore.jobs.spec import TaskSpec
import derived_tables

LABELS = ("positive", "negative")


def task(path: Path, **fields) -> TaskSpec:
    """A two-label task on a hub model id (task_version needs no model files), its warehouse at `path`."""
    return TaskSpec.model_validate({
        "name": "known-rows", "model": {"hub_id": "example/tiny-sentiment", "revision": "0123abcd"},
        "prompt": {"template": "Review: {text}\nSentiment:"}, "labels": {label: [label] for label in LABELS},
        "input": {"location": str(Path(path).parent / "batches")}, "warehouse": {"path": str(path)}, **fields})


def _append(con, table: str, rows: dict) -> None:
    con.register("known_rows", pa.table(rows))
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM known_rows")
    con.unregister("known_rows")


def _times(at: datetime, n: int) -> pa.Array:
    return pa.array([at] * n, pa.timestamp("us", tz="UTC"))


def insert_predictions(con, spec: TaskSpec, run_id: str, coverage, confidence, at: datetime,
                       decided_floor: float | None = None) -> list[str]:
    """One run's predictions, every one labelled `positive` with the given raw confidence and coverage, bucketed
    as scoring did with `decided_floor` (the task's floor by default); returns their row ids."""
    coverage, confidence = np.asarray(coverage, dtype=float), np.asarray(confidence, dtype=float)
    n = coverage.shape[0]
    floor = spec.coverage_floor if decided_floor is None else decided_floor
    bucket, reason = assign_buckets(confidence, coverage, spec.buckets, floor)
    logprobs = np.log(coverage)[:, None] + np.log(np.column_stack([confidence, 1 - confidence]))
    ids = [f"{run_id}-{i}" for i in range(n)]
    _append(con, "predictions", {
        "task_version": [spec.task_version] * n, "row_id": ids, "task_name": [spec.name] * n,
        "run_id": [run_id] * n, "batch_uri": [f"{run_id}.parquet"] * n, "batch_hash": [run_id] * n,
        "model": ["example/tiny-sentiment@0123abcd"] * n, "text": [f"text {i}" for i in ids],
        "label_logprobs": pa.array([list(zip(LABELS, lp)) for lp in logprobs.tolist()],
                                   pa.map_(pa.string(), pa.float64())),
        "coverage": coverage, "total_probability": coverage * confidence, "raw_label": ["positive"] * n,
        "raw_confidence": confidence, "truncated": [False] * n, "label": ["positive"] * n,
        "bucket": bucket.tolist(), "bucket_basis": ["raw"] * n, "bucket_reason": pa.array(reason.tolist(), pa.string()),
        "scored_at": _times(at, n), "written_at": _times(at, n), "night": [at.date()] * n})
    derived_tables.rebuild(con)  # written directly, as no writer does
    return ids


def insert_audit_labels(con, spec: TaskSpec, row_ids, right, inclusion_prob: float) -> None:
    """Audit labels for `row_ids`: the predicted `positive` where `right`, else `negative`."""
    n = len(row_ids)
    _append(con, "labels", {
        "task_name": [spec.name] * n, "row_id": list(row_ids),
        "label": ["positive" if r else "negative" for r in right], "source": ["audit"] * n,
        "inclusion_prob": [inclusion_prob] * n, "imported_at": _times(utcnow(), n), "import_id": ["audit-1"] * n,
        "design": ["audit"] * n})
    derived_tables.rebuild(con)
