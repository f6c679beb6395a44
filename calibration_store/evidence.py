"""One evidence base: every labeled row's out-of-fold prediction by each calibration recipe.

    fold = stable_folds("demo-sentiment", row_ids, folds=5)           # fixed for good: a hash of task and row id
    oof = out_of_fold(["platt", "isotonic"], labels, logprobs, y, w, fold, folds=5)
    oof.probs["platt"]                                                 # (n, K): each row by a map that never saw it

A **recipe** is a calibration method with its default parameters (`platt`, `vector`, `combined`, ...). A
labeled row's fold is a stable hash of (fold seed, task, row id) modulo K, so it never changes as labels arrive;
its out-of-fold prediction by a recipe comes from that recipe fitted on the labeled rows of the other K - 1
folds. K fits per recipe give every labeled row one prediction by a map that did not see its label, and
choosing (promotion), reporting and health checks read these, so no label is spent on a one-off split.

Why they are honest evidence for a champion fitted on *all* labels: K-fold cross-validation estimates the
expected loss of the procedure -- this recipe fitted on a sample of this size from this distribution -- rather
than of one fitted map (Bates, Hastie & Tibshirani 2024, "Cross-validation: what does it estimate and how well
does it do it?", JASA 119:546). Each fold's map saw (K-1)/K of the labels, so for a recipe that does not get
worse with more labels the estimate is, if anything, pessimistic for the map fitted on all of them (Hastie,
Tibshirani & Friedman 2009, section 7.10). A calibration recipe has a handful of parameters, so the K maps
barely differ from each other or from the all-label fit.

Certifying a threshold needs more than an estimate (a bound with a guarantee for the deployed map), so a
seeded `certification_slice` of the sample-design labels is kept out of the evidence and out of every fit.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calscore.calibration_store.combined import calibrator_input
from calscore.calibration_store.folds import cross_fit_on
from calscore.calibration_store.metrics import nll
from calscore.calibration_store.methods import CANDIDATES
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.validation import check_labels, check_logprobs, check_targets, check_weights

FOLD_SEED = 0  # salts the fold hash; recorded with every decision
# Rows an evidence fit (a fold's, the forward check's) uses at most: a seeded random subsample beyond it. The maps
# have a handful of parameters, so 20,000 rows pin them down; this bounds a recalibration's cost at 200,000 labels.
# (The deployed champion is still fitted on every label: its out-of-fold evidence, from maps fitted on fewer
# labels, is if anything pessimistic for it, as K-fold's always is.)
EVIDENCE_FIT_ROWS = 20_000


_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def _unit_hash(task_name: str, row_ids: Sequence[Any], salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per row, fixed by (salt, task, row id) on every machine and version: 64-bit
    FNV-1a over the key's UTF-8 bytes (padded with NUL to the longest key, so ids that differ only in trailing
    NUL characters share a hash: harmless for folds), then splitmix64's finalizer to spread the bits; plain
    uint64 arithmetic over all rows at once (a per-row cryptographic hash took seconds at 200,000 labels)."""
    keys = np.array([f"{salt}\x1f{task_name}\x1f{row_id}".encode() for row_id in row_ids], dtype=bytes)
    if keys.size == 0:
        return np.zeros(0)
    width = keys.dtype.itemsize
    data = np.frombuffer(keys.tobytes(), dtype=np.uint8).reshape(len(keys), width)
    h = np.full(len(keys), _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(width):
            h = (h ^ data[:, j].astype(np.uint64)) * _FNV_PRIME
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / 2.0**53


def stable_folds(task_name: str, row_ids: Sequence[Any], folds: int, seed: int = FOLD_SEED) -> np.ndarray:
    """Each row's fold in 0..folds-1: a hash of (seed, task, row id), so a row keeps it as labels arrive."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    return np.minimum((_unit_hash(task_name, row_ids, f"fold:{seed}") * folds).astype(np.int64), folds - 1)


def certification_slice(task_name: str, row_ids: Sequence[Any], certifies: Any, fraction: float) -> np.ndarray:
    """Which rows certify thresholds and never enter a fit: a stable `fraction` of the rows whose label comes
    from a sampling design (`certifies`: audit or random sample)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"certification fraction must be in [0, 1), got {fraction!r}")
    return np.asarray(certifies, dtype=bool) & (_unit_hash(task_name, row_ids, "certify") < fraction)


def recipes_for(method: str, champion_recipe: str | None = None) -> list[str]:
    """The recipes a recalibration cross-fits: `auto`'s candidates or the one method, and the champion's."""
    recipes = list(CANDIDATES) if method == "auto" else [method]
    if champion_recipe is not None and champion_recipe not in recipes:
        recipes.append(champion_recipe)
    return recipes


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions of several recipes on the same labeled rows (`out_of_fold`)."""

    fold: np.ndarray  # (n,) each row's fold
    folds: int
    seed: int
    probs: dict[str, np.ndarray]  # recipe -> (n, K) probabilities, task label order
    skipped: dict[str, str] = field(default_factory=dict)  # recipe -> why it could not be cross-fitted

    def nll(self, recipe: str, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        return nll(self.probs[recipe], y, weights)


def out_of_fold(
    recipes: Sequence[str],
    labels: Sequence[str],
    logprobs: Any,
    y: Any,
    weights: Any,
    fold: np.ndarray,
    folds: int,
    seed: int = FOLD_SEED,
    agreement: Any = None,
) -> OutOfFold:
    """Each recipe fitted K times (once per fold, on the other folds' rows); a recipe that cannot be fitted on
    some fold (too few rows of a label, say) is skipped with its reason. `agreement` (n, K) is read by
    `combined`."""
    labels = check_labels(labels)
    x = check_logprobs(logprobs, len(labels))
    t = check_targets(y, x.shape[0], len(labels))
    w = check_weights(weights, x.shape[0])
    fold = np.asarray(fold, dtype=np.int64)
    if fold.shape != t.shape or (fold.size and (fold.min() < 0 or fold.max() >= folds)):
        raise ValueError(f"fold must give each of the {t.shape[0]} rows a fold in 0..{folds - 1}")
    tests = [test for test in (np.flatnonzero(fold == k) for k in range(folds)) if test.size]
    probs, skipped = {}, {}
    for recipe in recipes:
        try:
            inputs = calibrator_input(make_calibrator(recipe, labels), x, agreement)
            probs[recipe] = cross_fit_on(lambda: make_calibrator(recipe, labels), inputs, t, w, len(labels), tests,
                                         EVIDENCE_FIT_ROWS)
        except ValueError as exc:
            skipped[recipe] = str(exc)
    return OutOfFold(fold=fold, folds=folds, seed=seed, probs=probs, skipped=skipped)


def labels_fingerprint(
    recipe: str, labels: Sequence[str], row_ids: Sequence[Any], y: np.ndarray, weights: np.ndarray | None,
    fold: np.ndarray,
) -> str:
    """What one recipe's out-of-fold predictions were computed from (labels, rows, their labels, weights and
    folds): stored predictions with the same fingerprint are current. A task_version's raw scores never change,
    so the row ids stand for them."""
    h = hashlib.sha256()
    h.update(repr((recipe, list(labels))).encode())
    h.update(np.ascontiguousarray(fold, dtype=np.int64).tobytes())
    h.update("\x1f".join(map(str, row_ids)).encode())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    if weights is not None:
        h.update(np.ascontiguousarray(np.round(weights, 12), dtype=np.float64).tobytes())
    return h.hexdigest()
