"""Champion / challenger on held-out labels, decided by a paired bootstrap; manual promote / rollback.

`decide` fits a challenger on all but the newest labels (the newest
`holdout_fraction`, keeping only labels that arrived after the champion's fit
window, so neither calibrator has seen them) and compares it with the
champion -- or with the raw scores (the identity map) when there is no
champion yet -- on the same rows:

- **time split**: when at least `min_holdout` newest labels are held out, both
  are scored on them;
- **cross-fit**: otherwise, when all the labels together reach `min_holdout`,
  every label is predicted by a challenger, and by a champion of the same
  method and parameters, fitted on the other `cross_fit_folds - 1` folds
  (the same seeded folds for both). The stored champion has seen most of
  these labels, so scoring it on them would flatter it; its recipe refitted
  is what is compared. The stored challenger is still the one fitted on all
  but the newest labels, as in a time split;
- fewer labels than `min_holdout` in all: no comparison, no promotion.

`MIN_HOLDOUT` = 100 rows. Below that the comparison cannot resolve what it
is asked: the 95% bootstrap interval of a 15-bin ECE on n rows is about
+-0.5 / sqrt(n) wide (+-0.05 at 100 rows, the size of a typical calibration
gain), and the mean of per-row log-loss differences, which are skewed,
needs on the order of 100 rows before its percentile bootstrap interval
keeps its stated level.

The rule (`verdict`), on a paired bootstrap of the compared rows
(`paired_bootstrap`: rows resampled with replacement, the same resample for
both calibrators, weights kept; `n_resamples`=1000, seeded): promote only when

1. the NLL gain, NLL(baseline) - NLL(challenger), is significant: the lower
   one-sided 95% bound (5th percentile of the resampled gains) is > 0; and
2. the ECE is not significantly worse: the lower one-sided 95% bound of the
   ECE increase, ECE(challenger) - ECE(baseline), is <= 0.

Each figure is reported with both one-sided 95% bounds (together a 90%
interval). The ECE is a parameter (`ece`, any `(probs, y, weights) -> float`;
the binned 15-bin ECE by default), and the challenger must have been fitted
on at least the policy's `min_labels`. Weights (inverse inclusion
probabilities) enter the fits and every figure.

"Newest" is arrival order (`arrival_order`): import time, then scoring time,
then, among rows that arrived together (one import holds them all), a seeded
random order stratified by label, so a tied slice keeps the labels' mix
rather than the ids' sort order. The seed is recorded with the decision.

Every candidate method's figures on the compared rows are kept (`auto` tries
several; each is fitted as the challenger is). `refit_on_all_labels` then
refits a promoted challenger's method on every label: the held-out 20% would
otherwise never be used. `record_decision` stores the calibrator that was
evaluated -- or, after a promotion, that refit, with the evaluated
challenger's held-out figures and a `refit_on_all_labels` entry -- and
records the decision with its figures, the paired intervals included;
`promote` and `rollback` are the manual levers, recorded as such.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa

from calscore.calibration_store import metrics
from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.document import build_document, load_document
from calscore.calibration_store.folds import cross_fit_with
from calscore.calibration_store.methods import CANDIDATES
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.store import (
    CHAMPION_EVENTS,
    champion,
    list_events,
    record_event,
    save_calibrator,
    set_champion,
    transaction,
)
from calscore.calibration_store.validation import (
    check_labels,
    check_logprobs,
    check_probs,
    check_targets,
    check_weights,
)

MIN_HOLDOUT = 100  # rows a comparison needs; why: the module docstring
N_RESAMPLES = 1000
LEVEL = 0.95  # one-sided confidence of each bound
TIME_SPLIT, CROSS_FIT = "time split", "cross-fit"
_CHUNK_CELLS = 2_000_000  # row indices drawn per bootstrap chunk (16 MB)

# The figures kept in a decision event (the bins stay in the document).
_SUMMARY = ("n", "accuracy", "ece", "ece_equal_mass", "ece_ci_low", "ece_ci_high", "mce", "nll", "brier", "auroc")

EceFunction = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], float]


class BinnedEce:
    """The top-label ECE on `n_bins` equal-width bins (metrics.ece) as a `(probs, y, weights)` function.

    Any such function can be the compared ECE; this one also offers `resampled`,
    the same figure for many bootstrap resamples at once (what makes a
    1,000-resample comparison cheap), equal to calling it on each resample.
    """

    def __init__(self, n_bins: int = metrics.DEFAULT_N_BINS):
        self.n_bins = n_bins
        self.metric_name = f"ECE ({n_bins} equal-width bins)"

    def __call__(self, probs: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        return metrics.ece(probs, y, self.n_bins, "uniform", weights)

    def resampled(self, probs: np.ndarray, y: np.ndarray, weights: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """ECE of each resample, rows `idx[i]`: sum over bins of |sum w (correct - confidence)| / sum w."""
        pred = np.argmax(probs, axis=1)
        conf = probs[np.arange(probs.shape[0]), pred]
        edges = metrics.bin_edges(conf, self.n_bins, "uniform")
        bins, nb = metrics.assign_bins(conf, edges), edges.shape[0] - 1
        gap = weights * ((pred == y) - conf)
        rows = np.arange(idx.shape[0])[:, None] * nb + bins[idx]
        sums = np.bincount(rows.ravel(), weights=gap[idx].ravel(), minlength=idx.shape[0] * nb)
        return np.abs(sums.reshape(idx.shape[0], nb)).sum(axis=1) / weights[idx].sum(axis=1)


def metric_name(ece: EceFunction) -> str:
    return getattr(ece, "metric_name", None) or getattr(ece, "__name__", None) or type(ece).__name__


class Interval(NamedTuple):
    """A paired difference on the compared rows and its one-sided bounds (percentiles of the resamples)."""

    estimate: float
    low: float
    high: float

    def text(self) -> str:
        return f"{self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


@dataclass(frozen=True)
class PairedComparison:
    """Challenger vs baseline on the same rows: the paired bootstrap of both differences."""

    n: int
    nll_gain: Interval  # NLL(baseline) - NLL(challenger): > 0 means the challenger is better
    ece_increase: Interval  # ECE(challenger) - ECE(baseline): > 0 means the challenger is worse
    ece_metric: str
    n_resamples: int
    seed: int
    level: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, as recorded with the decision."""
        return {
            "method": "paired bootstrap",
            "n": self.n,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "level": self.level,
            "bounds": f"one-sided {self.level:.0%} each (percentiles {1 - self.level:.2f} and {self.level:.2f})",
            "metrics": ["nll", self.ece_metric],
            "nll_gain": self.nll_gain._asdict(),
            "ece_increase": self.ece_increase._asdict(),
        }

    def text(self) -> str:
        pct = f"{self.level:.0%}"
        return (
            f"NLL gain {self.nll_gain.text()}, ECE increase {self.ece_increase.text()} "
            f"({self.ece_metric}; each bound one-sided {pct}, paired bootstrap of {self.n} rows, "
            f"{self.n_resamples} resamples, seed {self.seed})"
        )


def _row_losses(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """-log p(y) per row, floored at machine epsilon as metrics.nll; a certain and correct row costs 0."""
    return -np.log(np.maximum(p[np.arange(p.shape[0]), t], np.finfo(np.float64).eps))


def paired_bootstrap(
    challenger_probs: Any,
    baseline_probs: Any,
    y: Any,
    weights: Any = None,
    *,
    ece: EceFunction | None = None,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> PairedComparison:
    """Paired percentile bootstrap of NLL(baseline) - NLL(challenger) and ECE(challenger) - ECE(baseline).

    Both calibrators' probabilities are for the same rows; each resample draws
    n rows with replacement (weights travel with their rows) and computes both
    differences on it, so what the rows have in common cancels (Efron &
    Tibshirani 1993, ch. 13, percentile interval). The estimates are the
    differences on all rows (weighted as metrics.nll and `ece`); the bounds
    are the (1 - level) and level percentiles of the resampled differences.
    """
    pc, pb = check_probs(challenger_probs), check_probs(baseline_probs)
    if pc.shape != pb.shape:
        raise ValueError(f"challenger and baseline probabilities differ in shape: {pc.shape} vs {pb.shape}")
    t = check_targets(y, pc.shape[0], pc.shape[1])
    w = check_weights(weights, pc.shape[0])
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 100:
        raise ValueError(f"n_resamples must be an integer >= 100, got {n_resamples!r}")
    if not 0.5 < level < 1:
        raise ValueError(f"level must be in (0.5, 1), got {level!r}")
    ece = BinnedEce() if ece is None else ece
    n = t.shape[0]
    ww = np.ones(n) if w is None else w
    gain = _row_losses(pb, t) - _row_losses(pc, t)
    estimate = (float(ww @ gain / ww.sum()), float(ece(pc, t, w) - ece(pb, t, w)))
    rng = np.random.default_rng(seed)
    draws = np.full((n_resamples, 2), np.nan)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // n))  # resamples drawn at once: memory stays bounded
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        total = ww[idx].sum(axis=1)
        ok = total > 0  # with zero weights a resample can hold no weight at all: left out
        idx, out = idx[ok], draws[start : start + idx.shape[0]]
        out[ok, 0] = (ww[idx] * gain[idx]).sum(axis=1) / total[ok]
        if hasattr(ece, "resampled"):
            out[ok, 1] = ece.resampled(pc, t, ww, idx) - ece.resampled(pb, t, ww, idx)
        else:
            out[ok, 1] = [ece(pc[i], t[i], None if w is None else w[i]) - ece(pb[i], t[i], None if w is None else w[i])
                          for i in idx]
    low, high = np.nanquantile(draws, [1 - level, level], axis=0)
    return PairedComparison(
        n=n,
        nll_gain=Interval(estimate[0], float(low[0]), float(high[0])),
        ece_increase=Interval(estimate[1], float(low[1]), float(high[1])),
        ece_metric=metric_name(ece),
        n_resamples=int(n_resamples),
        seed=int(seed),
        level=float(level),
    )


@dataclass(frozen=True)
class Decision:
    """The outcome of one champion/challenger comparison."""

    promote: bool
    reason: str
    challenger_metrics: dict[str, Any] | None  # reliability report on the compared rows
    champion_metrics: dict[str, Any] | None  # the champion's, or the raw scores' when there is no champion
    n_holdout: int  # rows compared: the held-out slice (time split) or every label (cross-fit)
    n_train: int = 0  # labels the stored challenger was fitted on
    task_version: str = ""
    baseline: str = "raw"  # "raw" or "champion:<version>"
    evaluation: str | None = None  # "time split" or "cross-fit"; None when nothing was compared
    folds: int | None = None  # cross-fit only
    min_holdout: int = MIN_HOLDOUT
    comparison: PairedComparison | None = None
    fit_window: tuple[str, str] | None = None  # label times the challenger was fitted on
    holdout_window: tuple[str, str] | None = None  # label times of the compared rows
    holdout_index: np.ndarray | None = field(default=None, repr=False, compare=False)  # rows the challenger never saw
    challenger: BaseCalibrator | None = field(default=None, repr=False, compare=False)
    holdout_seed: int = 0  # seeds the random order among labels that arrived together (arrival_order)
    method: str | None = None  # the challenger's method (for `auto`, the method it chose)
    candidates: dict[str, Any] | None = None  # each candidate method's figures on the compared rows
    refit: BaseCalibrator | None = field(default=None, repr=False, compare=False)  # promoted, fitted on every label
    refit_info: dict[str, Any] | None = None  # {"n", "fit_window", "method"} of the refit

    def evaluation_text(self) -> str:
        if self.evaluation == CROSS_FIT:
            return f"cross-fit: {self.folds} folds over all {self.n_holdout} labels"
        return f"time split: {self.n_holdout} held-out labels"

    def figures(self) -> dict[str, Any]:
        """JSON-safe summary recorded with the decision event."""

        def summary(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
            return None if report is None else {k: report[k] for k in _SUMMARY}

        return {
            "promote": self.promote,
            "reason": self.reason,
            "baseline": self.baseline,
            "evaluation": self.evaluation,
            "folds": self.folds,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "min_holdout": self.min_holdout,
            "holdout_window": list(self.holdout_window) if self.holdout_window else None,
            "holdout_order": {"by": list(ARRIVAL_ORDER), "seed": self.holdout_seed},
            "method": self.method,
            "candidates": self.candidates,
            "refit_on_all_labels": self.refit_info,
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "challenger": summary(self.challenger_metrics),
            "baseline_metrics": summary(self.champion_metrics),
        }


def _utc_datetime64(times: Any, n: int) -> np.ndarray:
    """Times as naive-UTC datetime64[us]; aware datetimes and ISO strings are converted, naive ones taken as UTC."""
    if isinstance(times, (pa.Array, pa.ChunkedArray)):
        times = times.to_pylist()
    arr = np.asarray(times)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"times must be a 1-D sequence of {n} label times, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.datetime64):
        out = arr.astype("datetime64[us]")
    else:
        out = np.array([_to_naive_utc(t) for t in arr.tolist()], dtype="datetime64[us]")
    if np.isnat(out).any():
        raise ValueError("times must not be missing (NaT/None)")
    return out


def _to_naive_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"times must be datetimes or ISO 8601 strings, got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _iso(t: np.datetime64) -> str:
    return t.astype("datetime64[us]").item().replace(tzinfo=timezone.utc).isoformat()


ARRIVAL_ORDER = ("imported_at", "scored_at", "seeded random order stratified by label")


def arrival_order(times: np.ndarray, y: np.ndarray, scored: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Row positions oldest first: by label time, then scoring time, then at random (seeded) within a tie.

    Within each set of rows that arrived together, the rows of each label are shuffled and
    spread evenly over the set (rank r of a label's m rows sorts at (r + u) / m, u uniform),
    so any newest slice of the set holds each label in the set's proportion, within one row.
    """
    n = times.shape[0]
    scored = np.zeros(n, dtype="datetime64[us]") if scored is None else scored
    rng = np.random.default_rng(seed)
    shuffle, jitter = rng.random(n), rng.random(n)
    by_cell = np.lexsort((shuffle, y, scored, times))
    st, ss, sy = times[by_cell], scored[by_cell], y[by_cell]
    new = np.ones(n, dtype=bool)
    new[1:] = (st[1:] != st[:-1]) | (ss[1:] != ss[:-1]) | (sy[1:] != sy[:-1])
    starts = np.flatnonzero(new)
    cell = np.cumsum(new) - 1
    sizes = np.diff(np.append(starts, n))
    spread = np.empty(n)
    spread[by_cell] = (np.arange(n) - starts[cell] + jitter[by_cell]) / sizes[cell]
    return np.lexsort((spread, scored, times))


def _chosen_method(cal: BaseCalibrator) -> str:
    return getattr(cal, "chosen_method_", cal.method)


def _candidate_figures(challenger, method, labels, x, t, w, train, compared, ch_probs, folds, seed, n_bins):
    """Each candidate method's figures on the compared rows, fitted as the challenger was (`auto`: every method
    it tried; any other method: the challenger alone)."""
    def summary(probs):
        report = metrics.reliability_report(probs, t[compared], None if w is None else w[compared], n_bins)
        return {k: report[k] for k in ("n", "accuracy", "ece", "nll", "brier")}

    if method != "auto":
        return {method: summary(ch_probs)}
    out: dict[str, Any] = {}
    for name in challenger.methods:
        try:
            if folds is None:
                w_train = None if w is None else w[train]
                probs = CANDIDATES[name](labels=labels).fit(x[train], t[train], w_train).predict_proba(x[compared])
            else:
                probs = cross_fit_with(lambda name=name: CANDIDATES[name](labels=labels), x, t, w, len(labels),
                                       folds, seed)
        except ValueError as exc:
            out[name] = {"skipped": str(exc)}
            continue
        out[name] = summary(probs)
    return out


def candidates_text(figures: Mapping[str, Any]) -> str:
    """`platt NLL 0.4680, ECE 0.0400; ...` from a decision's figures (the event metrics or `Decision.figures()`)."""
    parts = []
    for name, f in (figures.get("candidates") or {}).items():
        mark = " (chosen)" if name == figures.get("method") else ""
        parts.append(f"{name}{mark} skipped: {f['skipped']}" if "skipped" in f else
                     f"{name}{mark} NLL {f['nll']:.4f}, ECE {f['ece']:.4f}")
    base = figures.get("baseline_metrics")
    if base:
        who = "raw scores" if figures.get("baseline") == "raw" else "champion"
        parts.append(f"{who} NLL {base['nll']:.4f}, ECE {base['ece']:.4f}")
    return "; ".join(parts)


def refit_on_all_labels(decision: Decision, logprobs: Any, y: Any, times: Any, *, labels: Sequence[str],
                        weights: Any = None) -> Decision:
    """A promoted decision with its method refitted on every label (for `auto`, the method it chose).

    The decision's figures stay those of the evaluated challenger on the rows it never saw;
    the refit has no unseen labels, so the next decision compares on newer labels or cross-fits.
    Any other decision is returned as it is.
    """
    if not decision.promote or decision.challenger is None:
        return decision
    labels = check_labels(labels)
    x = check_logprobs(logprobs, len(labels))
    t = check_targets(y, x.shape[0], len(labels))
    w = check_weights(weights, x.shape[0])
    ts = _utc_datetime64(times, x.shape[0])
    if decision.challenger.method == "auto":  # keep its choice (and the CV figures behind it), refit the chosen map
        refit = copy.deepcopy(decision.challenger)
        refit.calibrator_ = CANDIDATES[refit.chosen_method_](labels=labels).fit(x, t, w)
    else:
        refit = make_calibrator(decision.challenger.method, labels, **decision.challenger.get_params()).fit(x, t, w)
    window = (_iso(ts.min()), _iso(ts.max()))
    info = {"n": int(x.shape[0]), "method": _chosen_method(refit), "fit_window": list(window),
            "evaluated_challenger_n_train": decision.n_train}
    return replace(decision, refit=refit, refit_info=info)


def verdict(comparison: PairedComparison, against: str = "the champion") -> tuple[bool, str]:
    """The promotion rule: the NLL gain's lower bound > 0, and the ECE increase's lower bound <= 0."""
    pct = f"{comparison.level:.0%}"
    gain, worse = comparison.nll_gain, comparison.ece_increase
    if not gain.low > 0:
        return False, (
            f"held-out NLL is not significantly better than {against}: gain {gain.text()}, "
            f"its lower {pct} bound is not above 0"
        )
    if worse.low > 0:
        return False, (
            f"held-out NLL gain {gain.text()} is significant, but ECE is significantly worse than {against} "
            f"(the guard): increase {worse.text()}, its lower {pct} bound is above 0"
        )
    return True, (
        f"held-out NLL gain over {against} {gain.text()} (lower {pct} bound > 0), "
        f"ECE increase {worse.text()} not significantly above 0"
    )


def decide(
    logprobs: Any,
    y: Any,
    times: Any,
    *,
    labels: Sequence[str],
    task_version: str,
    method: str = "auto",
    champion_document: Mapping[str, Any] | None = None,
    weights: Any = None,
    holdout_fraction: float = 0.2,
    min_labels: int = 100,
    min_holdout: int = MIN_HOLDOUT,
    cross_fit_folds: int = 5,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    comparison_seed: int = 0,
    scored_times: Any = None,
    holdout_seed: int = 0,
    ece: EceFunction | None = None,
    n_bins: int = metrics.DEFAULT_N_BINS,
    **params: Any,
) -> Decision:
    """Fit a `method` challenger on all but the newest labels and compare it with the champion (or raw).

    `times` are the labels' arrival times (e.g. labels.imported_at), `scored_times` the rows'
    scoring times (ties of `times` broken by them, then at random seeded by `holdout_seed`,
    stratified by label: `arrival_order`); the champion's
    document gives its fit window and is loaded only if it belongs to `task_version`.
    The comparison is a time split when at least `min_holdout` newest labels are
    held out, else a `cross_fit_folds`-fold cross-fit over all labels (see the
    module docstring); `comparison_seed` seeds both the folds and the bootstrap,
    and `ece` (default: the binned ECE on `n_bins` bins) is the ECE compared.
    `params` go to the challenger's method.
    """
    labels = check_labels(labels)
    x = check_logprobs(logprobs, len(labels))
    t = check_targets(y, x.shape[0], len(labels))
    w = check_weights(weights, x.shape[0])
    ts = _utc_datetime64(times, x.shape[0])
    scored = None if scored_times is None else _utc_datetime64(scored_times, x.shape[0])
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    for name, value, least in (("min_labels", min_labels, 1), ("min_holdout", min_holdout, 1),
                               ("cross_fit_folds", cross_fit_folds, 2), ("comparison_seed", comparison_seed, 0),
                               ("holdout_seed", holdout_seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    make_calibrator(method, labels, **params)  # a bad method or parameter fails before any work
    ece = BinnedEce(n_bins) if ece is None else ece

    champ: BaseCalibrator | None = None
    baseline = "raw"
    n = x.shape[0]
    newest = arrival_order(ts, t, scored, holdout_seed)[n - max(1, math.ceil(holdout_fraction * n)) :]
    if champion_document is not None:
        champ = load_document(champion_document, task_version)
        fit_end = np.datetime64(_to_naive_utc(champion_document["fit_window"]["end"]), "us")
        newest = newest[ts[newest] > fit_end]  # the champion has seen labels up to its fit window's end
        baseline = f"champion:{champion_document['version']}"
    against = "the champion" if champ is not None else "the raw scores"
    holdout = np.zeros(n, dtype=bool)
    holdout[newest] = True
    train = ~holdout
    n_split, n_train = int(holdout.sum()), int(train.sum())
    where = "after the champion's fit window" if champ is not None else "in the newest slice"
    evaluation = TIME_SPLIT if n_split >= min_holdout else CROSS_FIT
    common = {
        "n_train": n_train,
        "task_version": task_version,
        "baseline": baseline,
        "min_holdout": min_holdout,
        "holdout_index": np.flatnonzero(holdout),
        "holdout_seed": holdout_seed,
    }

    def refuse(reason: str, n_compared: int = 0) -> Decision:
        return Decision(promote=False, reason=reason, challenger_metrics=None, champion_metrics=None,
                        n_holdout=n_compared, **common)

    if evaluation == CROSS_FIT and n < min_holdout:
        return refuse(
            f"only {n} labels in all (< min_holdout={min_holdout}), {n_split} of them {where}: "
            "too few to compare, no promotion"
        )
    if n_train < min_labels:
        return refuse(f"the challenger would be fitted on {n_train} labels (< policy min_labels={min_labels})")
    w_train = None if w is None else w[train]
    try:
        challenger = make_calibrator(method, labels, **params).fit(x[train], t[train], w_train)
    except ValueError as exc:
        return refuse(f"the challenger could not be fitted: {exc}")

    if evaluation == TIME_SPLIT:
        compared = np.flatnonzero(holdout)
        ch_probs = challenger.predict_proba(x[compared])
        base_probs = metrics.raw_probs(x[compared]) if champ is None else champ.predict_proba(x[compared])
        folds = None
        how = f"time split: {n_split} held-out labels {where}"
    else:
        compared = np.arange(n)
        folds = cross_fit_folds
        try:
            ch_probs = cross_fit_with(lambda: make_calibrator(method, labels, **params), x, t, w, len(labels),
                                      folds, comparison_seed)
            base_probs = metrics.raw_probs(x) if champ is None else cross_fit_with(
                lambda: make_calibrator(champ.method, labels, **champ.get_params()), x, t, w, len(labels),
                folds, comparison_seed)
        except ValueError as exc:
            return refuse(f"cross-fitting failed: {exc}")
        refit = "" if champ is None else f", the champion's method ({champ.method}) refitted on each fold"
        how = (f"cross-fit: only {n_split} labels {where} (< min_holdout={min_holdout}), "
               f"so {folds}-fold cross-fitting over all {n} labels{refit}")
    w_cmp = None if w is None else w[compared]
    comparison = paired_bootstrap(ch_probs, base_probs, t[compared], w_cmp, ece=ece, n_resamples=n_resamples,
                                  level=level, seed=comparison_seed)
    promote, reason = verdict(comparison, against)
    reason += f"; {how}; challenger fitted on {n_train} labels"
    candidates = _candidate_figures(challenger, method, labels, x, t, w, train, compared, ch_probs,
                                    folds, comparison_seed, n_bins)
    return Decision(
        promote=promote,
        reason=reason,
        challenger_metrics=metrics.reliability_report(ch_probs, t[compared], w_cmp, n_bins),
        champion_metrics=metrics.reliability_report(base_probs, t[compared], w_cmp, n_bins),
        n_holdout=int(compared.shape[0]),
        evaluation=evaluation,
        folds=folds,
        comparison=comparison,
        fit_window=(_iso(ts[train].min()), _iso(ts[train].max())),
        holdout_window=(_iso(ts[compared].min()), _iso(ts[compared].max())),
        challenger=challenger,
        method=_chosen_method(challenger),
        candidates=candidates,
        **common,
    )


def record_decision(
    con: duckdb.DuckDBPyConnection, decision: Decision, *, task_name: str, actor: str
) -> str | None:
    """Store the evaluated challenger and record the decision (promoted or rejected) with its figures.

    After `refit_on_all_labels` the stored (and promoted) calibrator is the refit, fitted on
    every label; its document keeps the evaluated challenger's held-out figures beside a
    `refit_on_all_labels` entry. Returns the stored version, or None when no challenger was
    fitted (nothing to store; the decision's reason says why).
    """
    if decision.challenger is None:
        return None
    heldout = {
        "evaluation": decision.evaluation,
        "folds": decision.folds,
        "baseline": decision.baseline,
        "holdout_window": list(decision.holdout_window),
        **decision.challenger_metrics,
    }
    if decision.refit is not None:
        info = decision.refit_info
        heldout = {**heldout, "refit_on_all_labels": info}
        doc = build_document(decision.refit, task_name, decision.task_version, tuple(info["fit_window"]),
                             info["n"], heldout)
    else:
        doc = build_document(
            decision.challenger, task_name, decision.task_version, decision.fit_window, decision.n_train, heldout
        )
    with transaction(con):
        version = save_calibrator(con, doc, actor=actor, reason=f"challenger, {decision.evaluation_text()}")
        if decision.promote:
            set_champion(con, version, actor=actor, reason=decision.reason, event="promoted", metrics=decision.figures())
        else:
            record_event(con, decision.task_version, version, "rejected", actor, decision.reason, decision.figures())
    return version


def promote(con: duckdb.DuckDBPyConnection, version: str, actor: str, reason: str) -> str | None:
    """Make a stored calibrator the champion by hand (recorded as manual_promote); return the retired version."""
    if not reason:
        raise ValueError("a manual promotion needs a reason")
    row = con.execute("SELECT status FROM calibrators WHERE version = ?", [version]).fetchone()
    if row is None:
        raise ValueError(f"no calibrator {version!r} in the store")
    if row[0] == "champion":
        raise ValueError(f"calibrator {version} already is the champion")
    return set_champion(con, version, actor=actor, reason=reason, event="manual_promote")


def champion_history(con: duckdb.DuckDBPyConnection, task_version: str) -> list[str]:
    """The stack of champions, oldest first, from the event log (a rollback pops the current one)."""
    stack: list[str] = []
    for e in list_events(con, task_version):
        if e["event"] not in CHAMPION_EVENTS:
            continue
        if e["event"] == "rollback":
            while stack and stack[-1] != e["version"]:
                stack.pop()
            if not stack:
                stack.append(e["version"])
        elif not stack or stack[-1] != e["version"]:
            stack.append(e["version"])
    return stack


def rollback(con: duckdb.DuckDBPyConnection, task_version: str, actor: str, reason: str) -> str:
    """Make the previous champion the champion again (recorded as rollback); return its version."""
    if not reason:
        raise ValueError("a rollback needs a reason")
    current = champion(con, task_version)
    if current is None:
        raise ValueError(f"task_version {task_version} has no champion to roll back")
    stack = champion_history(con, task_version)
    if not stack or stack[-1] != current["version"]:
        raise ValueError(
            f"the event log of task_version {task_version} does not end with the current champion "
            f"{current['version']}; promote the intended version by hand instead"
        )
    if len(stack) < 2:
        raise ValueError(f"task_version {task_version} has no previous champion to roll back to")
    previous = stack[-2]
    set_champion(con, previous, actor=actor, reason=reason, event="rollback")
    return previous
