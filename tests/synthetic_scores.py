"""Seeded synthetic scores with a known true calibration curve, for the calibrator tests.

The true label distribution of a row is softmax(t) for latent logits t; the
"model" reports label log-probabilities whose log-shares are scale * t + lean
(over-confident for scale > 1, leaning towards the first labels for a
decreasing lean), minus a random log coverage, so rows sum to less than 1 in
probability space, as first-token label masses do. The ideal calibrator is
therefore known: p = softmax((log s - lean) / scale), returned as `true_probs`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import log_softmax, softmax


class Scores(NamedTuple):
    logprobs: np.ndarray  # (n, K) label log-probabilities, unnormalised
    y: np.ndarray  # (n,) true label index, drawn from true_probs
    true_probs: np.ndarray  # (n, K) the true label distribution of each row


def synthetic_scores(
    n: int,
    n_labels: int = 2,
    *,
    scale: float = 2.5,
    lean: float = 1.0,
    spread: float = 1.5,
    seed: int = 0,
) -> Scores:
    """`n` rows of K-label scores; scale=1, lean=0 gives already calibrated scores."""
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, spread, size=(n, n_labels))
    true_probs = softmax(t, axis=1)
    cum = np.cumsum(true_probs, axis=1)
    y = np.minimum((rng.random((n, 1)) > cum).sum(axis=1), n_labels - 1)
    lean_vector = np.linspace(lean, 0.0, n_labels)
    coverage = rng.uniform(0.3, 1.0, size=(n, 1))
    logprobs = log_softmax(scale * t + lean_vector, axis=1) + np.log(coverage)
    return Scores(logprobs, y.astype(np.int64), true_probs)


def row_ids(n: int) -> list[str]:
    return [f"row-{i:05d}" for i in range(n)]


def evidence_of(scores: Scores, recipes, labels, weights=None, folds: int = 5, task: str = "sentiment"):
    """The out-of-fold evidence of `recipes` on these rows, folds by the stable hash of (task, row id)."""
    from calscore.calibration_store.evidence import out_of_fold, stable_folds

    fold = stable_folds(task, row_ids(scores.y.shape[0]), folds)
    return out_of_fold(list(recipes), labels, scores.logprobs, scores.y, weights, fold, folds)
