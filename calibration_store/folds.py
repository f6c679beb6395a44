"""K-fold cross-fitting: every row is predicted by a calibrator fitted without it.

Folds are stratified by label when every present label has at least `folds`
rows (so each training part sees every label), plain shuffled folds otherwise;
both are seeded, so a cross-fit is reproducible.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from calscore.calibration_store.validation import check_logprobs, check_targets, check_weights


def fold_indices(y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out row indices of each fold."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if folds > y.shape[0]:
        raise ValueError(f"cannot make {folds} folds from {y.shape[0]} labeled rows")
    from sklearn.model_selection import KFold, StratifiedKFold  # where used: see the package docstring

    counts = np.bincount(y)
    stratify = counts[counts > 0].min() >= folds
    splitter = (StratifiedKFold if stratify else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(y.shape[0]), y)]


def cross_fit_with(
    factory: Callable[[], Any],
    logprobs: Any,
    y: Any,
    weights: Any,
    n_labels: int,
    folds: int,
    seed: int,
) -> np.ndarray:
    """(n, K) held-out probabilities from `folds` calibrators made by `factory()`, on seeded folds (`fold_indices`).

    `logprobs` is what the calibrators read: (n, K) label log-probabilities, or for a `combined`
    calibrator (n, 2K) with the agreement beside them (the calibrator checks those columns)."""
    x, t, w = _checked(logprobs, y, weights, n_labels)
    return cross_fit_on(factory, x, t, w, n_labels, fold_indices(t, folds, seed))


def cross_fit_on(
    factory: Callable[[], Any],
    logprobs: Any,
    y: Any,
    weights: Any,
    n_labels: int,
    tests: list[np.ndarray],
    max_fit_rows: int | None = None,
) -> np.ndarray:
    """(n, K) held-out probabilities: the rows of each `tests[i]` predicted by a calibrator fitted on all others
    (on a seeded random `max_fit_rows` of them when there are more: `fit_subsample`)."""
    x, t, w = _checked(logprobs, y, weights, n_labels)
    out = np.empty((x.shape[0], n_labels))
    for i, test in enumerate(tests):
        train = fit_subsample(np.setdiff1d(np.arange(t.shape[0]), test, assume_unique=True), max_fit_rows, i)
        try:
            cal = factory().fit(x[train], t[train], None if w is None else w[train])
        except ValueError as exc:
            raise ValueError(f"cross-fitting fold {i + 1}/{len(tests)}: {exc}") from exc
        out[test] = cal.predict_proba(x[test])
    return out


def fit_subsample(rows: np.ndarray, max_rows: int | None, seed: int = 0) -> np.ndarray:
    """`rows`, or a seeded random `max_rows` of them (sorted): a calibration map has a handful of parameters, and
    past some ten thousand rows more of them move it less than their fitting costs."""
    if max_rows is None or rows.shape[0] <= max_rows:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))


def _checked(logprobs: Any, y: Any, weights: Any, n_labels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x = np.asarray(logprobs)
    check_logprobs(x[:, :n_labels] if x.ndim == 2 else x, n_labels)
    t = check_targets(y, x.shape[0], n_labels)
    return x, t, check_weights(weights, x.shape[0])
