"""Champion / challenger on held-out labels, decided by a paired bootstrap.

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
otherwise never be used. Writing a decision to the store, and the manual
levers (promote, rollback), are `champion_changes`.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from calscore.calibration_store import metrics
from calscore.calibration_store.arrival import ARRIVAL_ORDER, arrival_order, iso_utc, to_naive_utc, utc_datetime64
from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.document import load_document
from calscore.calibration_store.combined import calibrator_input
from calscore.calibration_store.folds import cross_fit_with
from calscore.calibration_store.methods import CANDIDATES
from calscore.calibration_store.paired_comparison import (
    LEVEL,
    N_RESAMPLES,
    BinnedEce,
    EceFunction,
    PairedComparison,
    paired_bootstrap,
)
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.validation import (
    check_labels,
    check_logprobs,
    check_targets,
    check_weights,
)

MIN_HOLDOUT = 100  # rows a comparison needs; why: the module docstring
TIME_SPLIT, CROSS_FIT = "time split", "cross-fit"

# The figures kept in a decision event (the bins stay in the document).
_SUMMARY = ("n", "accuracy", "ece", "ece_equal_mass", "ece_ci_low", "ece_ci_high", "mce", "smece", "smece_ci_low",
            "smece_ci_high", "debiased_ece", "nll", "brier", "auroc")

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
                        weights: Any = None, agreement: Any = None) -> Decision:
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
    ts = utc_datetime64(times, x.shape[0])
    if decision.challenger.method == "auto":  # keep its choice (and the CV figures behind it), refit the chosen map
        refit = copy.deepcopy(decision.challenger)
        refit.calibrator_ = CANDIDATES[refit.chosen_method_](labels=labels).fit(x, t, w)
    else:
        refit = make_calibrator(decision.challenger.method, labels, **decision.challenger.get_params())
        refit.fit(calibrator_input(refit, x, _agreement(agreement, x.shape[0], len(labels))), t, w)
    window = (iso_utc(ts.min()), iso_utc(ts.max()))
    info = {"n": int(x.shape[0]), "method": _chosen_method(refit), "fit_window": list(window),
            "evaluated_challenger_n_train": decision.n_train}
    return replace(decision, refit=refit, refit_info=info)


def _agreement(agreement: Any, n: int, k: int) -> np.ndarray | None:
    """The (n, K) sampled-agreement log-probabilities, checked; None when the rows have none."""
    if agreement is None:
        return None
    a = check_logprobs(agreement, k)
    if a.shape[0] != n:
        raise ValueError(f"{n} rows of log-probabilities but {a.shape[0]} of agreement")
    return a


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
    agreement: Any = None,
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
    `agreement` (n, K), the sampled-agreement log-probabilities of a sampling task, is read
    by a `combined` challenger or champion. `params` go to the challenger's method.
    """
    labels = check_labels(labels)
    x = check_logprobs(logprobs, len(labels))
    t = check_targets(y, x.shape[0], len(labels))
    w = check_weights(weights, x.shape[0])
    ts = utc_datetime64(times, x.shape[0])
    scored = None if scored_times is None else utc_datetime64(scored_times, x.shape[0])
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    for name, value, least in (("min_labels", min_labels, 1), ("min_holdout", min_holdout, 1),
                               ("cross_fit_folds", cross_fit_folds, 2), ("comparison_seed", comparison_seed, 0),
                               ("holdout_seed", holdout_seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    probe = make_calibrator(method, labels, **params)  # a bad method or parameter fails before any work
    n = x.shape[0]
    a = _agreement(agreement, n, len(labels))
    calibrator_input(probe, x, a)  # ... and so does a combined challenger without the agreement
    ece = BinnedEce(n_bins) if ece is None else ece

    champ: BaseCalibrator | None = None
    baseline = "raw"
    newest = arrival_order(ts, t, scored, holdout_seed)[n - max(1, math.ceil(holdout_fraction * n)) :]
    if champion_document is not None:
        champ = load_document(champion_document, task_version)
        fit_end = np.datetime64(to_naive_utc(champion_document["fit_window"]["end"]), "us")
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
    x_ch = calibrator_input(probe, x, a)
    try:
        x_champ = None if champ is None else calibrator_input(champ, x, a)
    except ValueError as exc:
        return refuse(f"the champion cannot be compared on these labels: {exc}")
    try:
        challenger = make_calibrator(method, labels, **params).fit(x_ch[train], t[train], w_train)
    except ValueError as exc:
        return refuse(f"the challenger could not be fitted: {exc}")

    if evaluation == TIME_SPLIT:
        compared = np.flatnonzero(holdout)
        ch_probs = challenger.predict_proba(x_ch[compared])
        base_probs = metrics.raw_probs(x[compared]) if champ is None else champ.predict_proba(x_champ[compared])
        folds = None
        how = f"time split: {n_split} held-out labels {where}"
    else:
        compared = np.arange(n)
        folds = cross_fit_folds
        try:
            ch_probs = cross_fit_with(lambda: make_calibrator(method, labels, **params), x_ch, t, w, len(labels),
                                      folds, comparison_seed)
            base_probs = metrics.raw_probs(x) if champ is None else cross_fit_with(
                lambda: make_calibrator(champ.method, labels, **champ.get_params()), x_champ, t, w, len(labels),
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
        fit_window=(iso_utc(ts[train].min()), iso_utc(ts[train].max())),
        holdout_window=(iso_utc(ts[compared].min()), iso_utc(ts[compared].max())),
        challenger=challenger,
        method=_chosen_method(challenger),
        candidates=candidates,
        **common,
    )
