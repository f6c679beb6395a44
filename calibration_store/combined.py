"""Two confidence signals per row -- first-token log-probabilities and the agreement of sampled
answers -- and a calibrator that learns from labels how much each one is worth.

    agree_lp = agreement_logprobs(agreement, samples, smoothing=0.5)   # (n, K), finite
    agree_lp = stored_agreement(table["agreement"], table["samples"], labels, 0.5)   # from the warehouse
    inputs = stack_signals(logprobs, agree_lp)        # (n, 2K): what a combined calibrator reads
    cal = CombinedCalibrator(labels).fit(inputs, y)
    cal.predict_proba(inputs)
    calibrator_input(cal, logprobs, agree_lp)        # the right matrix for any calibrator

**Agreement as probabilities.** N sampled answers give counts c_k per label and c_off
unparseable ones. With a pseudo-count a per outcome (K labels + off-format),
p_k = (c_k + a) / (N + a (K + 1)): never 0 (so never -inf), and the labels' total stays
below 1 by the off-format share -- the sampling analogue of coverage.

**Combining** (the "combined" method of the Classification with Confidence tutorial).
Two labels: p(l1) = sigmoid(w1 * z_logprob + w2 * z_agree + b), with each z the label
log-odds from that signal; more labels one such map per label on its one-vs-rest
log-odds, renormalised, as in `base.OneVsRestCalibrator`. A logistic fit with Platt's
targets, so w1 and w2 are what the labels say each signal is worth.

It reads both signals side by side, one (n, 2K) matrix (`stack_signals`), so it goes
wherever a calibrator goes: the promotion, the champion document, the nightly decision and
its re-application, each building the matrix with `calibrator_input`. It is not among
`methods.CANDIDATES` (those read label log-probabilities alone, which `auto` chooses
among); a task whose scorer samples (`method = "combined"`) asks for it with
`[calibration] method = "combined"`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from calscore.calibration_store.apply import logprob_matrix
from calscore.calibration_store.base import (BaseCalibrator, LogisticOneVsRest, load_numbers, log_rest, log_shares,
                                             single_threaded_blas)
from calscore.calibration_store.logistic import fit_logistic
from calscore.calibration_store.validation import check_fit_data, check_logprobs, normalised_weights


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


def stack_signals(logprobs: Any, agreement: Any) -> np.ndarray:
    """(n, 2K): each row's label log-probabilities, then its agreement log-probabilities."""
    x, a = np.asarray(logprobs, dtype=np.float64), np.asarray(agreement, dtype=np.float64)
    if x.shape != a.shape:
        raise ValueError(f"{x.shape[0]} rows of log-probabilities but {a.shape[0]} of agreement (shapes {x.shape}, "
                         f"{a.shape})")
    return np.hstack([x, a])


def reads_agreement(calibrator: BaseCalibrator) -> bool:
    return calibrator.method == CombinedCalibrator.method


def calibrator_input(calibrator: BaseCalibrator, logprobs: np.ndarray, agreement: np.ndarray | None) -> np.ndarray:
    """The matrix `calibrator` reads: the label log-probabilities, with the agreement beside them for `combined`."""
    if not reads_agreement(calibrator):
        return logprobs
    if agreement is None:
        raise ValueError(f"the {calibrator.method} calibrator combines log-probabilities with the agreement of "
                         "sampled answers, and these rows have none (scored by a method that does not sample)")
    return stack_signals(logprobs, agreement)


def _log_odds(ls: np.ndarray, k: int) -> np.ndarray:
    return ls[:, k] - log_rest(ls, k)


class CombinedCalibrator(LogisticOneVsRest):
    """A logistic map on both signals' label log-odds (see the module docstring)."""

    method = "combined"

    def fit(self, inputs: Any, y: Any, sample_weight: Any = None) -> "CombinedCalibrator":
        """Fit on (n, 2K) `stack_signals(logprobs, agreement)` and (n,) label indices."""
        self._validate_params()
        x, a = self._split(inputs)
        x, t, w = check_fit_data(x, y, sample_weight, self.n_labels, self.min_labels)
        with single_threaded_blas():
            self._fit(np.hstack([log_shares(x), log_shares(a)]), t, normalised_weights(w, t.shape[0]))
        self.n_fit_rows_ = int(t.shape[0])
        return self

    def predict_proba(self, inputs: Any) -> np.ndarray:
        self._check_fitted()
        x, a = self._split(inputs)
        return self._predict(np.hstack([log_shares(check_logprobs(x, self.n_labels)), log_shares(a)]))

    def _split(self, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """(log-probabilities, agreement) of a stacked (n, 2K) input; the agreement checked like log-probabilities."""
        z = np.asarray(inputs)
        k = self.n_labels
        if z.ndim != 2 or z.shape[1] != 2 * k:
            raise ValueError(f"the combined calibrator reads (n, {2 * k}) inputs (log-probabilities, then agreement: "
                             f"stack_signals), got shape {z.shape}")
        return z[:, :k], check_logprobs(z[:, k:], k)

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
