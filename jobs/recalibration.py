"""Recalibration work: labeled rows from the warehouse, challenger vs champion,
reliability snapshots, and append-only re-application of a new champion.

Honest by construction: the challenger is fit on all labels except the newest
slice, both it and the champion are scored on that slice, and the snapshot is
computed on that same slice, which the stored calibrator never saw.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa

from calibration_store import metrics
from calibration_store.promotion import decide
from calibration_store.store import champion, record_event, save_calibrator, set_champion
from jobs.buckets import assign_buckets
from jobs.spec import TaskSpec
from jobs.warehouse import reader, utcnow, writer


@dataclass(frozen=True)
class LabeledRows:
    """Current labels joined with this task_version's stored raw scores, oldest label first."""

    row_ids: np.ndarray
    logprobs: np.ndarray  # (n, K) label log-probabilities, task label order
    y: np.ndarray  # label index
    weights: np.ndarray  # 1 / inclusion probability (1 when unknown)
    imported_at: np.ndarray
    segments: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "LabeledRows":
        return LabeledRows(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def logprob_matrix(column: pa.ChunkedArray | pa.Array, labels: list[str]) -> np.ndarray:
    """(n, K) matrix from a MAP(VARCHAR, DOUBLE) column, columns in `labels` order."""
    maps = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    k = len(labels)
    keys = np.asarray(maps.keys.to_pylist(), dtype=object).reshape(-1, k)
    values = maps.items.to_numpy(zero_copy_only=False).reshape(-1, k)
    order = np.argsort([labels.index(x) for x in keys[0]]) if len(keys) else np.arange(k)
    if len(keys) and not (keys[:, order] == np.asarray(labels, dtype=object)).all():
        raise ValueError(f"stored label log-probabilities do not carry exactly the labels {labels}")
    return values[:, order].astype(float)


def load_labeled_rows(spec: TaskSpec) -> LabeledRows:
    with reader(spec.warehouse.path) as con:
        table = con.sql(
            "SELECT p.row_id, p.label_logprobs, l.label, l.inclusion_prob, l.imported_at, p.segment"
            " FROM labels l JOIN predictions p ON p.row_id = l.row_id AND p.task_version = $1"
            " WHERE l.task_name = $2 AND l.superseded_at IS NULL ORDER BY l.imported_at, p.row_id",
            params=[spec.task_version, spec.name],
        ).to_arrow_table()
    labels = spec.label_names
    inclusion = np.array(table["inclusion_prob"].to_pylist(), dtype=object)
    return LabeledRows(
        row_ids=np.array(table["row_id"].to_pylist(), dtype=object),
        logprobs=logprob_matrix(table["label_logprobs"], labels) if table.num_rows else np.zeros((0, len(labels))),
        y=np.array([labels.index(x) for x in table["label"].to_pylist()], dtype=int),
        weights=np.array([1.0 / p if p else 1.0 for p in inclusion], dtype=float),
        imported_at=np.array(table["imported_at"].to_pylist(), dtype=object),
        segments=np.array(table["segment"].to_pylist(), dtype=object),
    )


def time_split(rows: LabeledRows, holdout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (older fit rows, newest held-out slice); rows are ordered by import time."""
    n = len(rows)
    n_holdout = max(1, int(round(n * holdout_fraction)))
    return np.arange(0, n - n_holdout), np.arange(n - n_holdout, n)


def _snapshot_rows(spec: TaskSpec, run_id: str, version: str | None, rows: LabeledRows, calibrated: np.ndarray) -> list[dict]:
    """Raw and calibrated reliability on the held-out rows, overall and per segment."""
    snapshot_id = f"snap-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    raw = metrics.raw_probs(rows.logprobs)
    groups = [("all", np.ones(len(rows), dtype=bool))]
    if any(s is not None for s in rows.segments):
        groups += [(str(s), rows.segments == s) for s in sorted({s for s in rows.segments if s is not None})]
    out = []
    for segment, mask in groups:
        if mask.sum() == 0:
            continue
        for kind, probs in (("raw", raw), ("calibrated", calibrated)):
            report = metrics.reliability_report(probs[mask], rows.y[mask], weights=rows.weights[mask])
            out.append({"snapshot_id": snapshot_id, "scores": kind, "segment": segment, "version": version, **report})
    return out


def _write_snapshots(con, spec: TaskSpec, run_id: str, snaps: list[dict], diagram_path: str | None) -> None:
    now = utcnow()
    for s in snaps:
        con.execute(
            "INSERT INTO reliability_snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [s["snapshot_id"], spec.name, spec.task_version, s["version"], run_id, s["scores"], s["segment"],
             s["n"], s["accuracy"], s["ece"], s["ece_equal_mass"], s["ece_ci_low"], s["ece_ci_high"], s["mce"],
             s["nll"], s["brier"], json.dumps(s["bins"]), diagram_path if s["segment"] == "all" else None, now],
        )


def reapply(con, spec: TaskSpec, calibrator, version: str, run_id: str) -> int:
    """Append decisions by the new champion for recent predictions (never overwrite)."""
    if spec.calibration.reapply_days == 0:
        return 0
    since = utcnow() - timedelta(days=spec.calibration.reapply_days)
    table = con.sql(
        "SELECT row_id, label_logprobs, coverage FROM predictions p WHERE task_version = $1 AND scored_at >= $2"
        " AND coalesce(calibrator_version, '') <> $3"
        " AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.task_version = p.task_version"
        "   AND d.row_id = p.row_id AND d.calibrator_version = $3)",
        params=[spec.task_version, since, version],
    ).to_arrow_table()
    if table.num_rows == 0:
        return 0
    probs = calibrator.predict_proba(logprob_matrix(table["label_logprobs"], spec.label_names))
    confidence = probs.max(axis=1)
    bucket, reason = assign_buckets(confidence, table["coverage"].to_numpy(), spec.buckets, spec.coverage_floor)
    n = table.num_rows
    decided = pa.table({
        "task_version": [spec.task_version] * n,
        "row_id": table["row_id"],
        "calibrator_version": [version] * n,
        "label": pa.array(np.array(spec.label_names, dtype=object)[probs.argmax(axis=1)], pa.string()),
        "confidence": confidence,
        "bucket": pa.array(bucket, pa.string()),
        "bucket_reason": pa.array(reason, pa.string()),
        "run_id": [run_id] * n,
        "decided_at": pa.array([utcnow()] * n, pa.timestamp("us", tz="UTC")),
    })
    con.register("decided", decided)
    con.execute("INSERT INTO decisions SELECT * FROM decided")
    return n


def recalibrate(spec: TaskSpec, run_id: str, diagram=None) -> dict:
    """Fit a challenger, decide, store, snapshot and re-apply; return a summary.

    `diagram(raw_report, calibrated_report, path)` draws the reliability PNG (optional).
    """
    rows = load_labeled_rows(spec)
    policy = spec.calibration
    if len(rows) < policy.min_labels:
        return {"decision": f"skipped: {len(rows)} labeled rows, the policy needs {policy.min_labels}", "promoted": False}
    fit_idx, hold_idx = time_split(rows, policy.holdout_fraction)
    with reader(spec.warehouse.path) as con:
        current = champion(con, spec.task_version)
    fit, hold = rows.take(fit_idx), rows.take(hold_idx)
    decision = decide(
        method=policy.method, labels=spec.label_names,
        fit_logprobs=fit.logprobs, fit_y=fit.y, fit_weights=fit.weights,
        holdout_logprobs=hold.logprobs, holdout_y=hold.y, holdout_weights=hold.weights,
        champion=current[0] if current else None, min_labels=policy.min_labels, folds=policy.folds,
    )
    fit_window = (str(min(fit.imported_at)), str(max(fit.imported_at))) if len(fit) else (None, None)
    document = decision.document(spec.name, spec.task_version, fit_window)
    with writer(spec.warehouse.path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            save_calibrator(con, document)
            record_event(con, spec.task_version, document["version"], "fitted", run_id, None, decision.challenger_metrics)
            event = "promoted" if decision.promote else "rejected"
            record_event(con, spec.task_version, document["version"], event, run_id, decision.reason,
                         {"challenger": decision.challenger_metrics, "champion": decision.champion_metrics})
            if decision.promote:
                set_champion(con, spec.task_version, document["version"])
            winner_version = document["version"] if decision.promote else (current[1]["version"] if current else None)
            winner = decision.challenger if decision.promote else (current[0] if current else None)
            reapplied = reapply(con, spec, winner, winner_version, run_id) if decision.promote else 0
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    calibrated = winner.predict_proba(hold.logprobs) if winner is not None else metrics.raw_probs(hold.logprobs)
    snaps = _snapshot_rows(spec, run_id, winner_version, hold, calibrated)
    diagram_path = None
    if diagram is not None:
        overall = {s["scores"]: s for s in snaps if s["segment"] == "all"}
        diagram_path = str(spec.warehouse.path.parent / "snapshots" / f"{snaps[0]['snapshot_id']}.png")
        diagram(overall["raw"], overall["calibrated"], diagram_path)
    with writer(spec.warehouse.path) as con:
        _write_snapshots(con, spec, run_id, snaps, diagram_path)
    overall = {s["scores"]: s for s in snaps if s["segment"] == "all"}
    return {
        "decision": decision.reason,
        "promoted": decision.promote,
        "version": document["version"],
        "method": document["method"],
        "champion": winner_version,
        "n_labels": len(rows),
        "n_holdout": len(hold),
        "raw": {k: overall["raw"][k] for k in ("accuracy", "ece", "nll", "brier")},
        "calibrated": {k: overall["calibrated"][k] for k in ("accuracy", "ece", "nll", "brier")},
        "reapplied": reapplied,
        "diagram": diagram_path,
    }
