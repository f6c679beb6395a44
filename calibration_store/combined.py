"""Two confidence signals per row -- first-token log-probabilities and the agreement of sampled
answers -- and a calibrator that learns from labels how much each one is worth.

    agree_lp = agreement_logprobs(agreement, samples, smoothing=0.5)   # (n, K), finite
    agree_lp = stored_agreement(table["agreement"], table["samples"], labels, 0.5)   # from the warehouse
    cal = CombinedCalibrator(labels).fit(logprobs, agree_lp, y)
    cal.predict_proba(logprobs, agree_lp)
    compare_signals(labels, logprobs, agree_lp, y)   # held-out: each signal alone vs combined

**Agreement as probabilities.** N sampled answers give counts c_k per label and c_off
unparseable ones. With a pseudo-count a per outcome (K labels + off-format),
p_k = (c_k + a) / (N + a (K + 1)): never 0 (so never -inf), and the labels' total stays
below 1 by the off-format share -- the sampling analogue of coverage.

**Combining** (the "combined" method of the Classification with Confidence tutorial).
Two labels: p(l1) = sigmoid(w1 * z_logprob + w2 * z_agree + b), with each z the label
log-odds from that signal; more labels one such map per label on its one-vs-rest
log-odds, renormalised, as in `base.OneVsRestCalibrator`. A logistic fit with Platt's
targets, so w1 and w2 are what the labels say each signal is worth.

This is not a label-log-probability calibrator (it reads two matrices, not one), so it
is not among `methods.CANDIDATES`, which the nightly decision path applies to
`label_logprobs` alone.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from calscore.calibration_store import metrics
from calscore.calibration_store.apply import logprob_matrix
from calscore.calibration_store.base import LogisticOneVsRest, load_numbers, log_rest, log_shares, single_threaded_blas
from calscore.calibration_store.evaluation import cross_fit
from calscore.calibration_store.folds import fold_indices
from calscore.calibration_store.logistic import fit_logistic
from calscore.calibration_store.validation import (check_fit_data, check_labels, check_logprobs, check_targets,
                                                   check_weights, normalised_weights)


def agreement_logprobs(agreement: Any, samples: Any, smoothing: float) -> np.ndarray:
    """(n, K) log p_k = log((c_k + a) / (N + a (K + 1))) from agreement rates c_k / N and N per row."""
    rates = np.asarray(agreement, dtype=np.float64)
    n = np.asarray(samples, dtype=np.float64)[:, None]
    if smoothing <= 0:
        raise ValueError("smoothing must be positive: an unseen label would get log 0")
    return np.log((rates * n + smoothing) / (n + smoothing * (rates.shape[1] + 1)))


def stored_agreement(agreement: Any, samples: Any, labels: Sequence[str], smoothing: float) -> np.ndarray | None:
    """Smoothed agreement log-probabilities from the warehouse's `agreement` (MAP label -> rate) and
    `samples` columns (Arrow); None when no row has them (scored by log-probabilities alone)."""
    if agreement.null_count == len(agreement):
        return None
    if agreement.null_count or samples.null_count:
        raise ValueError(f"{agreement.null_count} of {len(agreement)} rows have no agreement: "
                         "rows from a sampling and a non-sampling method are mixed")
    rates = logprob_matrix(agreement, labels, "agreement")
    return agreement_logprobs(rates, samples.to_numpy(), smoothing)


def _log_odds(ls: np.ndarray, k: int) -> np.ndarray:
    return ls[:, k] - log_rest(ls, k)


class CombinedCalibrator(LogisticOneVsRest):
    """A logistic map on both signals' label log-odds (see the module docstring)."""

    method = "combined"

    def fit(self, logprobs: Any, agreement: Any, y: Any, sample_weight: Any = None) -> "CombinedCalibrator":
        self._validate_params()
        x, t, w = check_fit_data(logprobs, y, sample_weight, self.n_labels, self.min_labels)
        a = check_logprobs(agreement, self.n_labels)
        if a.shape[0] != x.shape[0]:
            raise ValueError(f"{x.shape[0]} rows of log-probabilities but {a.shape[0]} of agreement")
        with single_threaded_blas():
            self._fit(np.hstack([log_shares(x), log_shares(a)]), t, normalised_weights(w, t.shape[0]))
        self.n_fit_rows_ = int(t.shape[0])
        return self

    def predict_proba(self, logprobs: Any, agreement: Any) -> np.ndarray:
        self._check_fitted()
        x, a = check_logprobs(logprobs, self.n_labels), check_logprobs(agreement, self.n_labels)
        return self._predict(np.hstack([log_shares(x), log_shares(a)]))

    def _features(self, ls: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return _log_odds(ls[:, : self.n_labels], k), _log_odds(ls[:, self.n_labels:], k)

    def _fit_binary(self, z_logprob, z_agree, target, w) -> dict[str, Any]:
        # centred on "trust the log-probabilities as they are": slope 1 on them, 0 on agreement
        coef, intercept = fit_logistic(np.column_stack([z_logprob, z_agree]), target, w, smoothing=self.smoothing,
                                       C=self.C, center=np.array([1.0, 0.0]))
        return {"logprob_slope": float(coef[0]), "agreement_slope": float(coef[1]), "intercept": intercept}

    def _score_binary(self, z_logprob, z_agree, model) -> np.ndarray:
        return model["logprob_slope"] * z_logprob + model["agreement_slope"] * z_agree + model["intercept"]

    def _load_binary(self, model: Any) -> dict[str, Any]:
        spec = {"logprob_slope": "scalar", "agreement_slope": "scalar", "intercept": "scalar"}
        return load_numbers(model, spec, "combined")


def compare_signals(labels: Sequence[str], logprobs: Any, agreement: Any, y: Any, weights: Any = None,
                    folds: int = 5, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Held-out reliability of Platt on each signal alone and of the combined map, on the same rows.

    Cross-fitted (every row predicted by maps fitted on the other folds, the same folds for all
    three), weighted like the fits. Keys: "logprobs", "agreement", "combined".
    """
    labels = check_labels(labels)
    x, a = check_logprobs(logprobs, len(labels)), check_logprobs(agreement, len(labels))
    t = check_targets(y, x.shape[0], len(labels))
    w = check_weights(weights, x.shape[0])
    combined = np.empty_like(x)
    for test in fold_indices(t, folds, seed):
        train = np.setdiff1d(np.arange(t.shape[0]), test, assume_unique=True)
        cal = CombinedCalibrator(labels).fit(x[train], a[train], t[train], None if w is None else w[train])
        combined[test] = cal.predict_proba(x[test], a[test])
    probs = {"logprobs": cross_fit("platt", labels, x, t, w, folds, seed),
             "agreement": cross_fit("platt", labels, a, t, w, folds, seed), "combined": combined}
    return {name: {**metrics.reliability_report(p, t, w, seed=seed), "evaluation": f"{folds}-fold cross-fitting"}
            for name, p in probs.items()}


def signal_comparison_markdown(result: dict[str, dict[str, Any]]) -> str:
    """The comparison as a Markdown table (for the recalibration report)."""
    lines = ["| signal | n | accuracy | ECE | NLL | Brier | AUROC |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in result.items():
        auroc = "-" if r.get("auroc") is None else f"{r['auroc']:.3f}"
        lines.append(f"| {name} | {r['n']} | {r['accuracy']:.3f} | {r['ece']:.3f} | {r['nll']:.3f} | "
                     f"{r['brier']:.3f} | {auroc} |")
    return "\n".join(lines)
