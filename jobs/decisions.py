"""The one decision path: label log-probabilities -> (calibrated) label, confidence, bucket.

    decided = decide(spec, label_logprobs, coverage, applied)   # applied: the champion, or None
    decided = decide(spec, label_logprobs, coverage, applied, agreement_signal(spec, table))   # sampling tasks

With a calibrator, the label is the calibrated argmax and the confidence its
calibrated probability (`calibration_store.apply.predict_labels`); without one,
the raw label and the raw confidence (its share of the label mass) decide the
bucket. Buckets are an ordered list of (name, inclusive lower bound); a row whose
label tokens got less than the coverage floor in effect of the probability goes to
the last bucket as `off_format`, whatever its confidence. The floor in effect is the
task file's `coverage_floor` until a champion carries a floor decided from labels
(`applied_floor`; `jobs.calibrators.coverage_floor`), so the floor travels with the
champion that applies it. Scoring, re-application of a new champion and
`calscore explain` all call `decide`. A `combined` champion also reads the
rows' sampled agreement (`agreement_signal`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from calscore.calibration_store.apply import predict_labels
from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.combined import calibrator_input, stored_agreement
from calscore.calibration_store.metrics import raw_probs
from calscore.jobs.spec import Bucket, TaskSpec

OFF_FORMAT = "off_format"


@dataclass(frozen=True)
class AppliedCalibrator:
    """The calibrator a run applies: its version id, the fitted calibrator and the coverage floor decision its
    document carries (None: none was made, the task file's floor applies untested)."""

    version: str
    calibrator: BaseCalibrator
    coverage_floor: Mapping[str, Any] | None = None


def applied_floor(task_floor: float, decision: Mapping[str, Any] | None) -> float:
    """The coverage floor a run applies: the champion's decision (`in_effect`: the task file's floor, or 0 when the
    labels did not show off-format rows less accurate) when it was made for the task file's current floor; else the
    task file's floor (no decision yet, or the file's floor changed since, which the decision did not test)."""
    if decision is None or decision.get("task_floor") != task_floor:
        return task_floor
    return float(decision["in_effect"])


@dataclass(frozen=True)
class Decisions:
    label: np.ndarray  # the decided label per row (calibrated when a calibrator was applied)
    confidence: np.ndarray | None  # calibrated confidence; None without a calibrator
    probs: np.ndarray | None  # (n, K) every label's calibrated probability; None without a calibrator
    decision_confidence: np.ndarray  # what the bucket was cut on (calibrated, else raw)
    bucket: np.ndarray
    reason: np.ndarray  # None, or 'off_format'
    basis: str  # "calibrated" or "raw"
    calibrator_version: str | None


def assign_buckets(
    confidence: np.ndarray,
    coverage: np.ndarray,
    buckets: Sequence[Bucket],
    coverage_floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket name per row, and a reason (None, or 'off_format' below the coverage floor)."""
    confidence = np.asarray(confidence, dtype=float)
    names = np.array([b.name for b in buckets], dtype=object)
    bounds = np.array([b.min for b in buckets])
    # first bucket (highest first) whose bound the confidence reaches; the last takes the rest, NaN included
    reached = confidence[:, None] >= bounds[None, :]
    reached[:, -1] = True
    index = np.argmax(reached, axis=1)
    off_format = np.asarray(coverage, dtype=float) < coverage_floor
    index[off_format] = len(buckets) - 1
    reasons = np.where(off_format, OFF_FORMAT, None).astype(object)
    return names[index], reasons


def agreement_signal(spec: TaskSpec, table: pa.Table | pa.RecordBatch) -> np.ndarray | None:
    """(n, K) smoothed agreement log-probabilities of a `combined` task's rows (scored or stored `agreement` and
    `samples` columns); None for every other scoring method."""
    if getattr(spec.model, "method", None) != "combined" or table.num_rows == 0:
        return None
    return stored_agreement(table["agreement"], table["samples"], spec.label_names, spec.model.smoothing)


def decide(spec: TaskSpec, label_logprobs: np.ndarray, coverage: np.ndarray, applied: AppliedCalibrator | None,
           agreement: np.ndarray | None = None) -> Decisions:
    """Label, confidence and bucket for each row of (n, K) label log-probabilities (task label order);
    `agreement` (n, K) is read by a `combined` calibrator."""
    labels = np.array(spec.label_names, dtype=object)
    if applied is None:
        shares = raw_probs(label_logprobs) if len(label_logprobs) else np.empty((0, len(labels)))
        best = np.argmax(shares, axis=1)
        probs, confidence, basis_confidence = None, None, shares[np.arange(len(best)), best]
    else:
        inputs = calibrator_input(applied.calibrator, label_logprobs, agreement) if len(label_logprobs) else label_logprobs
        probs, best, confidence = predict_labels(applied.calibrator, inputs)
        basis_confidence = confidence
    floor = applied_floor(spec.coverage_floor, None if applied is None else applied.coverage_floor)
    bucket, reason = assign_buckets(basis_confidence, coverage, spec.buckets, floor)
    return Decisions(
        label=labels[best], confidence=confidence, probs=probs, decision_confidence=basis_confidence, bucket=bucket,
        reason=reason, basis="raw" if applied is None else "calibrated",
        calibrator_version=applied.version if applied else None,
    )
