"""How a demo night did against the demo's hidden labels (never used for fitting)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from calibration_store import metrics
from calibration_store.apply import logprob_matrix
from jobs.spec import TaskSpec
from jobs.warehouse import reader


def evaluate_run(spec: TaskSpec, run_id: str, truth_path: Path) -> dict:
    """Raw vs calibrated accuracy and ECE of one run's rows, and accuracy per bucket."""
    truth = pq.read_table(truth_path)
    with reader(spec.warehouse.path) as con:
        con.register("truth", truth)
        rows = con.sql(
            "SELECT p.label_logprobs, p.label, p.confidence, p.bucket, t.label AS truth"
            " FROM predictions p JOIN truth t ON t.id = p.row_id WHERE p.run_id = $1",
            params=[run_id],
        ).to_arrow_table()
    labels = spec.label_names
    y = np.array([labels.index(t) for t in rows["truth"].to_pylist()])
    raw = metrics.raw_probs(logprob_matrix(rows["label_logprobs"], labels))
    out = {"n": rows.num_rows, "raw": {"accuracy": metrics.accuracy(raw, y), "ece": metrics.ece(raw, y)}}
    calibrated = rows["confidence"].null_count == 0
    if calibrated:
        conf = rows["confidence"].to_numpy()
        pred = np.array([labels.index(x) for x in rows["label"].to_pylist()])
        probs = np.zeros_like(raw)  # top-label ECE needs only the predicted label's probability
        probs[np.arange(len(y)), pred] = conf
        rest = (1.0 - conf) / (len(labels) - 1)
        for k in range(len(labels)):
            probs[pred != k, k] = rest[pred != k]
        out["calibrated"] = {"accuracy": metrics.accuracy(probs, y), "ece": metrics.ece(probs, y)}
    correct = np.array(rows["label"].to_pylist()) == np.array(rows["truth"].to_pylist())
    buckets = np.array(rows["bucket"].to_pylist())
    out["buckets"] = [
        {"bucket": b.name, "rows": int((buckets == b.name).sum()),
         "accuracy": float(correct[buckets == b.name].mean()) if (buckets == b.name).any() else None}
        for b in spec.buckets
    ]
    return out
