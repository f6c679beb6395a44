"""How a demo night did against the demo's hidden labels (never used for fitting)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from calscore.calibration_store.binning import calibration_errors
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.statements import statement


def _figures(confidence: np.ndarray, correct: np.ndarray) -> dict:
    ece, mce = calibration_errors(confidence, correct)
    return {"accuracy": float(correct.mean()), "ece": ece, "mce": mce}


def evaluate_run(spec: TaskSpec, run_id: str, truth_path: Path) -> dict:
    """Raw vs calibrated accuracy and ECE (15 bins) of one run's rows, and accuracy per bucket."""
    truth = pq.read_table(truth_path)
    with reader(spec.warehouse.path) as con:
        con.register("truth", truth)
        rows = con.sql(statement("predictions_vs_demo_truth"), params={"run_id": run_id}).to_arrow_table()
    correct = rows["correct"].to_numpy(zero_copy_only=False)
    out = {"n": rows.num_rows,
           "raw": _figures(rows["raw_confidence"].to_numpy(), rows["raw_correct"].to_numpy(zero_copy_only=False))}
    if rows.num_rows and rows["confidence"].null_count == 0:
        out["calibrated"] = _figures(rows["confidence"].to_numpy(), correct)
    buckets = np.array(rows["bucket"].to_pylist(), dtype=object)
    out["buckets"] = [
        {"bucket": b.name, "rows": int((buckets == b.name).sum()),
         "accuracy": float(correct[buckets == b.name].mean()) if (buckets == b.name).any() else None}
        for b in spec.buckets
    ]
    return out
