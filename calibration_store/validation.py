"""Input and parameter validation, in one place (the scikit-learn way).

Every public entry point (fit, predict_proba, from_dict, the metrics) calls
these checks, so a bad input fails with the same clear ValueError wherever it
enters. Degenerate input is an error, never a silent identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import logsumexp

# A label mass slightly above 1 only comes from rounding in the scorer's sums.
_LOGPROB_TOLERANCE = 1e-6


# --- declared parameter constraints (cf. sklearn.utils._param_validation) ----------


@dataclass(frozen=True)
class Interval:
    """A number in [low, high] (open ends with closed='neither'/'left'/'right'); None = unbounded."""

    kind: type  # Real or Integral
    low: float | None
    high: float | None
    closed: str = "both"

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            kind = "an integer" if self.kind is Integral else "a number"
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        if isinstance(value, Real) and not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        lo_ok = self.low is None or (value >= self.low if self.closed in ("both", "left") else value > self.low)
        hi_ok = self.high is None or (value <= self.high if self.closed in ("both", "right") else value < self.high)
        if not (lo_ok and hi_ok):
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            lo = "-inf" if self.low is None else self.low
            hi = "inf" if self.high is None else self.high
            raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value!r}")


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple

    def check(self, name: str, value: Any) -> None:
        if value not in self.values or isinstance(value, bool) != any(isinstance(v, bool) for v in self.values):
            raise ValueError(f"{name} must be one of {list(self.values)}, got {value!r}")


@dataclass(frozen=True)
class NoneOr:
    """None, or a value passing the inner constraint."""

    inner: Interval | Options

    def check(self, name: str, value: Any) -> None:
        if value is not None:
            self.inner.check(name, value)


@dataclass(frozen=True)
class MethodList:
    """A non-empty tuple of distinct method names from `allowed`."""

    allowed: tuple[str, ...]

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a non-empty list of methods from {list(self.allowed)}, got {value!r}")
        bad = [v for v in value if v not in self.allowed]
        if bad or len(set(value)) != len(value):
            raise ValueError(f"{name} must list distinct methods from {list(self.allowed)}, got {list(value)!r}")


BOOL = Options((True, False))


def validate_params(params: Mapping[str, Any], constraints: Mapping[str, Any], owner: str) -> None:
    """Check every hyper-parameter against its declared constraint; unknown names are errors."""
    unknown = sorted(set(params) - set(constraints))
    if unknown:
        raise ValueError(f"{owner}: unknown parameter(s) {unknown}; known: {sorted(constraints)}")
    for name, constraint in constraints.items():
        constraint.check(f"{owner}.{name}", params[name])


# --- data checks -------------------------------------------------------------------


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """At least two distinct, non-empty label names, in order."""
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise ValueError(f"labels must be a list of label names, got {labels!r}")
    labels = tuple(labels)
    if len(labels) < 2:
        raise ValueError(f"at least two labels are needed to calibrate, got {list(labels)}")
    if any(not isinstance(label, str) or not label for label in labels):
        raise ValueError(f"labels must be non-empty strings, got {list(labels)}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {list(labels)}")
    return labels


def check_logprobs(logprobs: Any, n_labels: int) -> np.ndarray:
    """An (n, K) float64 matrix of finite label log-probabilities (log p <= 0, label mass <= 1).

    Rows from a scorer that saw only part of the distribution (an endpoint's top-k
    list) are valid as they are: a label none of whose tokens was reported carries an
    imputed, finite log-probability (the scorer flags it); -inf is never a raw score.
    """
    x = np.asarray(logprobs)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"logprobs must be a numeric (n, {n_labels}) array, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if x.ndim != 2 or x.shape[1] != n_labels:
        raise ValueError(f"logprobs must have shape (n, {n_labels}) (one column per label), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("logprobs has no rows")
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"logprobs must be finite: row {row} holds {x[row].tolist()} "
            f"({int(bad.any(axis=1).sum())} row(s) with NaN or inf); a label whose mass a scorer did not "
            "observe (a top-k list) carries an imputed finite value, never -inf"
        )
    if x.max() > _LOGPROB_TOLERANCE:
        row = int(np.argmax(x.max(axis=1)))
        raise ValueError(
            f"logprobs must be log-probabilities (<= 0); row {row} holds {x[row].tolist()}. "
            "Did you pass probabilities or logits instead of log p(label)?"
        )
    mass = logsumexp(x, axis=1)
    if mass.max() > _LOGPROB_TOLERANCE:
        row = int(np.argmax(mass))
        raise ValueError(
            f"the label probabilities of row {row} sum to {math.exp(mass[row]):.6g} > 1: "
            "logprobs must be log p(label) of disjoint labels"
        )
    return x


def check_targets(y: Any, n_rows: int, n_labels: int) -> np.ndarray:
    """(n,) integer label indices in [0, K)."""
    t = np.asarray(y)
    if t.ndim != 1 or t.shape[0] != n_rows:
        raise ValueError(f"y must be a 1-D array of {n_rows} label indices, got shape {t.shape}")
    if t.dtype == bool or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"y must hold integer label indices (0..{n_labels - 1}), got dtype {t.dtype}")
    t = t.astype(np.int64, copy=False)
    out = (t < 0) | (t >= n_labels)
    if out.any():
        raise ValueError(f"y holds label index {int(t[out][0])}, outside 0..{n_labels - 1} ({int(out.sum())} row(s))")
    return t


def check_weights(weights: Any, n_rows: int) -> np.ndarray | None:
    """None, or (n,) finite non-negative weights with a positive sum (e.g. inverse inclusion probabilities)."""
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.dtype == bool or not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise ValueError(f"sample weights must be numeric, got dtype {w.dtype}")
    w = w.astype(np.float64, copy=False)
    if w.ndim != 1 or w.shape[0] != n_rows:
        raise ValueError(f"sample weights must be a 1-D array of {n_rows} values, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("sample weights must be finite (no NaN or inf)")
    if (w < 0).any():
        raise ValueError(f"sample weights must be >= 0, got {float(w.min())}")
    if w.sum() <= 0:
        raise ValueError("sample weights sum to zero: nothing to fit or score")
    return w


def normalised_weights(weights: np.ndarray | None, n_rows: int) -> np.ndarray:
    """Weights rescaled to mean 1 (ones when None).

    The weighted estimates do not depend on the scale of the weights; fixing the
    mean at 1 keeps regularisation and Platt's prior counts on the scale of the
    number of labeled rows, whatever the inclusion probabilities were.
    """
    if weights is None:
        return np.ones(n_rows)
    return weights * (n_rows / weights.sum())


def check_fit_data(
    logprobs: Any, y: Any, sample_weight: Any, n_labels: int, min_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """All fit-time checks: shapes, finiteness, label range, enough rows, at least two classes."""
    x = check_logprobs(logprobs, n_labels)
    t = check_targets(y, x.shape[0], n_labels)
    w = check_weights(sample_weight, x.shape[0])
    present = t if w is None else t[w > 0]
    if present.shape[0] < min_labels:
        raise ValueError(f"need at least {min_labels} labeled rows (with positive weight) to fit, got {present.shape[0]}")
    classes = np.unique(present)
    if classes.shape[0] < 2:
        raise ValueError(
            f"all {present.shape[0]} labeled rows have the same label (index {int(classes[0])}): "
            "a calibrator needs examples of at least two labels"
        )
    return x, t, w


def check_probs(probs: Any) -> np.ndarray:
    """(n, K >= 2) probabilities in [0, 1] whose rows sum to 1."""
    p = np.asarray(probs)
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)) or p.dtype == bool:
        raise ValueError(f"probs must be a numeric (n, K) array, got dtype {p.dtype}")
    p = p.astype(np.float64, copy=False)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] == 0:
        raise ValueError(f"probs must have shape (n, K) with n >= 1 and K >= 2, got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("probs must be finite (no NaN or inf)")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"probs must lie in [0, 1], got values in [{p.min()}, {p.max()}]")
    sums = p.sum(axis=1)
    if np.abs(sums - 1).max() > 1e-6:
        row = int(np.argmax(np.abs(sums - 1)))
        raise ValueError(f"each row of probs must sum to 1; row {row} sums to {sums[row]!r}")
    return p


def check_confidence(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """(n,) confidences in [0, 1] and (n,) 0/1 correctness."""
    c = np.asarray(confidence, dtype=np.float64)
    k = np.asarray(correct)
    if c.ndim != 1 or c.shape[0] == 0:
        raise ValueError(f"confidence must be a non-empty 1-D array, got shape {c.shape}")
    if k.shape != c.shape:
        raise ValueError(f"correct must have the shape of confidence {c.shape}, got {k.shape}")
    if not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
        raise ValueError("confidence must be finite and in [0, 1]")
    if k.dtype != bool:
        if not np.isin(k, (0, 1)).all():
            raise ValueError("correct must hold booleans or 0/1")
    return c, k.astype(np.float64)
