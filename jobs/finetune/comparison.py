"""Base vs fine-tuned on the same held-out labels, raw and calibrated by each method, per segment.

    figures = compare(spec, examples, split, tuned_logprobs, tuned_coverage)

Held-out rows are the split's newest, which neither the adapter nor any calibrator here saw.
Calibrators are fitted on what each model may honestly use: the base model on every labeled
row before the held-out ones (train and validation: the base never trained on them), the
fine-tuned model on the validation rows only (it was trained on the others, and its scores
there are over-confident). This answers "should I fine-tune?": the calibrated base with all
its labels against the fine-tuned model with the labels left after training.

Per row group (all rows, then each segment): accuracy, ECE and MCE (15 equal-width bins), NLL,
Brier, mean confidence, and per bucket of the task's thresholds the share of rows it takes
and their accuracy (rows below the coverage floor go to the last bucket, as in scoring). Figures
are weighted by 1 / audit inclusion probability, like the recalibration's, so they speak for
all rows the labels were drawn from.
"""
from __future__ import annotations

import numpy as np

from calscore.calibration_store import metrics
from calscore.calibration_store.registry import METHODS, make_calibrator
from calscore.jobs.decisions import AppliedCalibrator, decide
from calscore.jobs.finetune.examples import Examples
from calscore.jobs.finetune.split import Split
from calscore.jobs.spec import TaskSpec

BASE, TUNED = "base", "fine-tuned"


def _group_figures(spec: TaskSpec, logprobs: np.ndarray, coverage: np.ndarray, y: np.ndarray, w: np.ndarray,
                   applied: AppliedCalibrator | None) -> dict:
    decided = decide(spec, logprobs, coverage, applied)
    probs = applied.calibrator.predict_proba(logprobs) if applied else metrics.raw_probs(logprobs)
    confidence = decided.decision_confidence
    correct = (np.argmax(probs, axis=1) == y).astype(float)
    ece, mce = metrics.calibration_errors(confidence, correct, weights=w)
    buckets = []
    for b in spec.buckets:
        mask = decided.bucket == b.name
        weight = float(w[mask].sum())
        buckets.append({"bucket": b.name, "rows": int(mask.sum()), "share": weight / float(w.sum()),
                        "accuracy": float(w[mask] @ correct[mask] / weight) if weight else None})
    return {"n": int(len(y)), "accuracy": metrics.accuracy(probs, y, w), "ece": ece, "mce": mce,
            "nll": metrics.nll(probs, y, w), "brier": metrics.brier(probs, y, w),
            "mean_confidence": float(w @ confidence / w.sum()), "buckets": buckets,
            "bins": metrics.reliability_bins(confidence, correct, weights=w)}


def _fit(method: str, spec: TaskSpec, logprobs: np.ndarray, y: np.ndarray, w: np.ndarray):
    return make_calibrator(method, labels=spec.label_names).fit(logprobs, y, sample_weight=w)


def compare(spec: TaskSpec, examples: Examples, split: Split, tuned_logprobs: np.ndarray, tuned_coverage: np.ndarray,
            segments: np.ndarray | None = None, methods: tuple[str, ...] = METHODS) -> dict:
    """Figures for base and fine-tuned on the held-out rows (see the module docstring).

    `tuned_logprobs` / `tuned_coverage` hold the fine-tuned model's scores of the validation rows,
    then the held-out rows (in split order); `segments` overrides the held-out rows' segments.
    """
    n_val = len(split.validation)
    held = examples.take(split.heldout)
    segs = np.asarray(held.segments if segments is None else segments, dtype=object)
    fit_rows = {BASE: np.concatenate([split.train, split.validation]), TUNED: split.validation}
    models = {
        BASE: (examples.base_logprobs[fit_rows[BASE]], held.base_logprobs, held.base_coverage),
        TUNED: (tuned_logprobs[:n_val], tuned_logprobs[n_val:], tuned_coverage[n_val:]),
    }
    groups = [("all", np.ones(len(held), dtype=bool))]
    groups += [(str(s), segs == s) for s in sorted({s for s in segs if s is not None}, key=str)]
    rows, skipped = [], []
    for model, (fit_lp, eval_lp, eval_cov) in models.items():
        fit_y, fit_w = examples.y[fit_rows[model]], examples.weights[fit_rows[model]]
        for method in ("raw", *methods):
            applied = None
            if method != "raw":
                try:
                    applied = AppliedCalibrator(method, _fit(method, spec, fit_lp, fit_y, fit_w))
                except ValueError as exc:  # too few or one-class fit rows for this method
                    skipped.append({"model": model, "method": method, "reason": str(exc)})
                    continue
            for segment, mask in groups:
                if mask.any():
                    figures = _group_figures(spec, eval_lp[mask], eval_cov[mask], held.y[mask], held.weights[mask], applied)
                    rows.append({"model": model, "scores": method, "segment": segment, **figures})
    return {"heldout_rows": int(len(held)), "fit_rows": {k: int(len(v)) for k, v in fit_rows.items()},
            "methods": ["raw", *methods], "primary_method": spec.calibration.method, "rows": rows, "skipped": skipped,
            "buckets": [b.name for b in spec.buckets]}


def pick(figures: dict, model: str, scores: str, segment: str = "all") -> dict | None:
    """One row of `compare`'s figures, or None when it was not computed."""
    return next((r for r in figures["rows"] if (r["model"], r["scores"], r["segment"]) == (model, scores, segment)), None)
