"""Champion / challenger on every label's out-of-fold evidence, decided by a paired comparison.

`decide` reads an evidence base (`evidence.OutOfFold`: each labeled row's prediction by each recipe
fitted on the other folds) and compares the challenger's recipe with the champion's -- or with the
raw scores when there is no champion yet -- on the same rows, every labeled one:

- the challenger's recipe is the task's method or, for `auto`, the recipe with the lowest
  out-of-fold NLL (ties: the simpler, earlier one in `methods.CANDIDATES`);
- the comparison (`paired_comparison.paired_bootstrap`, weights kept, seeded) gives the NLL gain and
  the ECE increase with one-sided bounds, and `verdict` promotes only when the NLL gain's lower bound
  is > 0 and the ECE increase's lower bound is <= 0 (the ECE is not significantly worse). `auto`
  chose its recipe on these same rows, the best of m: the NLL gain's bound is taken at level
  1 - (1 - level) / m (Bonferroni; Dunn 1961), so whichever recipe wins, the chance that one no
  better than the baseline is promoted stays at most 1 - level;
- fewer than `min_holdout` labels: no comparison, no promotion;
- **forward check**: when the labels span two nights or more, both recipes are fitted on the older
  nights' labels and compared on the newest night's (at least `FORWARD_MIN_ROWS` of them); a
  challenger significantly worse there (the NLL gain's upper bound < 0) is refused. Pooled folds
  average over nights; this is what catches a map that stopped fitting the newest rows;
- when the challenger's recipe is the champion's own, a recipe compared with itself has no gain to
  test: the recipe refitted on every label (which saw labels the champion did not) replaces the
  champion ("refresh"), unless it is the champion itself (no label changed since its fit).

The stored challenger is always its recipe fitted on every evidence label; the decision keeps the
out-of-fold figures, the folds and their seed, and both checks.

`MIN_HOLDOUT` = 100 rows. Below that the comparison cannot resolve what it
is asked: the 95% bootstrap interval of a 15-bin ECE on n rows is about
+-0.5 / sqrt(n) wide (+-0.05 at 100 rows, the size of a typical calibration
gain), and the mean of per-row log-loss differences, which are skewed,
needs on the order of 100 rows before its percentile bootstrap interval
keeps its stated level.

The rows' out-of-fold predictions share training rows (each fold's map saw the others), so rows are
not quite independent draws as the bootstrap treats them; with a calibration recipe's few parameters
the dependence is weak (Bengio & Grandvalet 2004 on why no unbiased variance estimate exists for
K-fold CV), and `tests/test_promotion_statistics.py` measures the resulting false-promotion rate by
simulation. Writing a decision to the store, and the manual levers (promote, rollback), are
`champion_changes`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calscore.calibration_store import metrics
from calscore.calibration_store.label_times import iso_utc, utc_datetime64
from calscore.calibration_store.auto import AutoCalibrator
from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.combined import calibrator_input
from calscore.calibration_store.document import load_document, recipe_of
from calscore.calibration_store.evidence import EVIDENCE_FIT_ROWS, OutOfFold
from calscore.calibration_store.folds import fit_subsample
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
FORWARD_MIN_ROWS = 30  # newest-night rows a forward check needs (fewer: it is not run, and says so)
OUT_OF_FOLD = "out-of-fold"

# The figures kept in a decision event (the bins stay in the document).
_SUMMARY = ("n", "accuracy", "ece", "ece_equal_mass", "ece_ci_low", "ece_ci_high", "mce", "smece", "smece_ci_low",
            "smece_ci_high", "debiased_ece", "nll", "brier", "auroc")


@dataclass(frozen=True)
class Decision:
    """The outcome of one champion/challenger comparison."""

    promote: bool
    reason: str
    challenger_metrics: dict[str, Any] | None  # reliability report of the challenger's out-of-fold predictions
    champion_metrics: dict[str, Any] | None  # the champion recipe's, or the raw scores' when there is no champion
    n_holdout: int  # rows compared: every evidence label, each predicted by maps that never saw it
    n_train: int = 0  # labels the stored challenger was fitted on (all of them)
    task_version: str = ""
    baseline: str = "raw"  # "raw" or "champion:<version>"
    evaluation: str | None = None  # "out-of-fold"; None when nothing was compared
    folds: int | None = None
    fold_seed: int = 0
    min_holdout: int = MIN_HOLDOUT
    comparison: PairedComparison | None = None
    forward: dict[str, Any] | None = None  # the forward check (`forward_check`)
    fit_window: tuple[str, str] | None = None  # label times the challenger was fitted on
    challenger: BaseCalibrator | None = field(default=None, repr=False, compare=False)  # fitted on every label
    method: str | None = None  # the challenger's recipe (for `auto`, the one it chose)
    candidates: dict[str, Any] | None = None  # each recipe's out-of-fold figures
    refresh: bool = False  # the challenger's recipe is the champion's

    def evaluation_text(self) -> str:
        return f"out-of-fold: {self.folds} folds over all {self.n_holdout} labels (fold seed {self.fold_seed})"

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
            "fold_seed": self.fold_seed,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "min_holdout": self.min_holdout,
            "method": self.method,
            "refresh": self.refresh,
            "candidates": self.candidates,
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "forward": self.forward,
            "challenger": summary(self.challenger_metrics),
            "baseline_metrics": summary(self.champion_metrics),
        }


def _summary(probs: np.ndarray, t: np.ndarray, w: np.ndarray | None, n_bins: int) -> dict[str, Any]:
    """A candidate's point figures (no intervals: a recalibration compares many candidates)."""
    return {"n": int(t.shape[0]), "accuracy": metrics.accuracy(probs, t, w),
            "ece": metrics.ece(probs, t, n_bins, weights=w), "nll": metrics.nll(probs, t, w),
            "brier": metrics.brier(probs, t, w)}


def candidates_text(figures: Mapping[str, Any]) -> str:
    """`platt NLL 0.4680, ECE 0.0400; ...` from a decision's figures (the event metrics or `Decision.figures()`)."""
    parts = []
    for name, f in (figures.get("candidates") or {}).items():
        mark = " (chosen)" if name == figures.get("method") else ""
        parts.append(f"{name}{mark} skipped: {f['skipped']}" if "skipped" in f else
                     f"{name}{mark} NLL {f['nll']:.4f}, ECE {f['ece']:.4f}")
    base = figures.get("baseline_metrics")
    if base:
        who = "raw scores" if figures.get("baseline") == "raw" else "champion's recipe"
        parts.append(f"{who} NLL {base['nll']:.4f}, ECE {base['ece']:.4f}")
    return "; ".join(parts)


def verdict(comparison: PairedComparison, against: str = "the champion") -> tuple[bool, str]:
    """The promotion rule: the NLL gain's lower bound > 0, and the ECE increase's lower bound <= 0."""
    gain, worse = comparison.nll_gain, comparison.ece_increase
    gain_pct, ece_pct = f"{100 * comparison.gain_level:.4g}%", f"{100 * comparison.level:.4g}%"
    if not gain.low > 0:
        return False, (
            f"NLL is not significantly better than {against}: gain {gain.text()}, "
            f"its lower {gain_pct} bound is not above 0"
        )
    if worse.low > 0:
        return False, (
            f"the NLL gain {gain.text()} is significant, but ECE is significantly worse than {against} "
            f"(the guard): increase {worse.text()}, its lower {ece_pct} bound is above 0"
        )
    return True, (
        f"NLL gain over {against} {gain.text()} (lower {gain_pct} bound > 0), "
        f"ECE increase {worse.text()} not significantly above 0"
    )


def _agreement(agreement: Any, n: int, k: int) -> np.ndarray | None:
    """The (n, K) sampled-agreement log-probabilities, checked; None when the rows have none."""
    if agreement is None:
        return None
    a = check_logprobs(agreement, k)
    if a.shape[0] != n:
        raise ValueError(f"{n} rows of log-probabilities but {a.shape[0]} of agreement")
    return a


def _fit_recipe(recipe: str, labels: tuple[str, ...], x: np.ndarray, t: np.ndarray, w: np.ndarray | None,
                a: np.ndarray | None) -> BaseCalibrator:
    cal = make_calibrator(recipe, labels)
    return cal.fit(calibrator_input(cal, x, a), t, w)


def forward_check(challenger: str, baseline: str | None, labels: tuple[str, ...], x: np.ndarray, t: np.ndarray,
                  w: np.ndarray | None, a: np.ndarray | None, nights: Any, *, min_labels: int, ece: EceFunction,
                  n_resamples: int, level: float, seed: int) -> dict[str, Any]:
    """Both recipes (`baseline` None: the raw scores) fitted on the older nights' labels and compared on the
    newest night's; `refuses` when the challenger is significantly worse there (NLL gain's upper bound < 0)."""
    def not_run(reason: str) -> dict[str, Any]:
        return {"ran": False, "refuses": False, "reason": reason}

    if nights is None:
        return not_run("the labels' nights are unknown")
    night = np.asarray([str(v) for v in nights], dtype=object)
    distinct = sorted(set(night.tolist()))
    if len(distinct) < 2:
        return not_run(f"the labels span one night ({distinct[0]})" if distinct else "no labels")
    newest = night == distinct[-1]
    older = ~newest
    n_new, n_old = int(newest.sum()), int(older.sum())
    if n_new < FORWARD_MIN_ROWS or n_old < min_labels:
        return not_run(f"{n_new} labels on the newest night {distinct[-1]} (needs {FORWARD_MIN_ROWS}) and {n_old} "
                       f"on the older ones (needs min_labels={min_labels})")
    sub = (lambda v, m: None if v is None else v[m])
    fit = fit_subsample(np.flatnonzero(older), EVIDENCE_FIT_ROWS, seed)
    try:
        ch = _fit_recipe(challenger, labels, x[fit], t[fit], sub(w, fit), sub(a, fit))
        base = None if baseline is None else _fit_recipe(baseline, labels, x[fit], t[fit], sub(w, fit), sub(a, fit))
    except ValueError as exc:
        return not_run(f"a recipe could not be fitted on the older nights: {exc}")
    ch_probs = ch.predict_proba(calibrator_input(ch, x[newest], sub(a, newest)))
    base_probs = (metrics.raw_probs(x[newest]) if base is None
                  else base.predict_proba(calibrator_input(base, x[newest], sub(a, newest))))
    comparison = paired_bootstrap(ch_probs, base_probs, t[newest], sub(w, newest), ece=ece,
                                  n_resamples=n_resamples, level=level, seed=seed)
    refuses = comparison.nll_gain.high < 0
    return {"ran": True, "refuses": bool(refuses), "newest_night": distinct[-1], "n_fit": n_old, "n_test": n_new,
            "comparison": comparison.to_dict(),
            "reason": (f"fitted on {n_old} labels of nights before {distinct[-1]}, compared on its {n_new}: NLL gain "
                       f"{comparison.nll_gain.text()}" + (", significantly worse there" if refuses else ""))}


def decide(
    logprobs: Any,
    y: Any,
    times: Any,
    *,
    labels: Sequence[str],
    task_version: str,
    evidence: OutOfFold,
    method: str = "auto",
    champion_document: Mapping[str, Any] | None = None,
    weights: Any = None,
    nights: Any = None,
    min_labels: int = 100,
    min_holdout: int = MIN_HOLDOUT,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    comparison_seed: int = 0,
    ece: EceFunction | None = None,
    n_bins: int = metrics.DEFAULT_N_BINS,
    agreement: Any = None,
) -> Decision:
    """Compare the challenger's recipe with the champion's (or the raw scores) on every row's out-of-fold
    prediction in `evidence`, check forward across `nights`, and fit the challenger on every row.

    `times` are the labels' arrival times (the stored calibrator's fit window), `nights` the rows'
    scoring nights (the forward check); the champion's document is loaded only if it belongs to
    `task_version`. `comparison_seed` seeds the bootstraps, `ece` (default: the binned ECE on `n_bins`
    bins) is the ECE compared, and `agreement` (n, K), the sampled-agreement log-probabilities of a
    sampling task, is read by a `combined` recipe.
    """
    labels = check_labels(labels)
    x = check_logprobs(logprobs, len(labels))
    t = check_targets(y, x.shape[0], len(labels))
    w = check_weights(weights, x.shape[0])
    ts = utc_datetime64(times, x.shape[0])
    for name, value, least in (("min_labels", min_labels, 1), ("min_holdout", min_holdout, 1),
                               ("comparison_seed", comparison_seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if evidence.fold.shape[0] != x.shape[0]:
        raise ValueError(f"the evidence covers {evidence.fold.shape[0]} rows, the labels {x.shape[0]}")
    n = x.shape[0]
    a = _agreement(agreement, n, len(labels))
    calibrator_input(make_calibrator(method, labels), x, a)  # a bad method, or combined without agreement, fails
    ece = BinnedEce(n_bins) if ece is None else ece
    champ_recipe = None if champion_document is None else recipe_of(champion_document)
    if champion_document is not None:
        load_document(champion_document, task_version)  # refused unless it belongs to this task_version
    baseline = "raw" if champion_document is None else f"champion:{champion_document['version']}"
    against = "the raw scores" if champion_document is None else f"the champion's recipe ({champ_recipe})"
    common = {"n_train": n, "n_holdout": n, "task_version": task_version, "baseline": baseline,
              "min_holdout": min_holdout, "folds": evidence.folds, "fold_seed": evidence.seed}

    def refuse(reason: str, **more: Any) -> Decision:
        return Decision(promote=False, reason=reason, challenger_metrics=None, champion_metrics=None, **common, **more)

    if n < min_holdout:
        return refuse(f"only {n} labels (< min_holdout={min_holdout}): too few to compare, no promotion")
    if n < min_labels:
        return refuse(f"only {n} labels (< policy min_labels={min_labels}): no challenger is fitted")
    recipes = list(CANDIDATES) if method == "auto" else [method]
    fitted = [r for r in recipes if r in evidence.probs]
    candidates = {r: (_summary(evidence.probs[r], t, w, n_bins) if r in evidence.probs
                      else {"skipped": evidence.skipped.get(r, "not cross-fitted")}) for r in recipes}
    if not fitted:
        return refuse(f"no recipe could be cross-fitted: {candidates}", candidates=candidates)
    if champ_recipe is not None and champ_recipe not in evidence.probs:
        return refuse(f"the champion's recipe ({champ_recipe}) has no out-of-fold predictions: "
                      f"{evidence.skipped.get(champ_recipe, 'not cross-fitted')}", candidates=candidates)
    chosen = min(fitted, key=lambda r: (evidence.nll(r, t, w), recipes.index(r)))
    ch_probs = evidence.probs[chosen]
    base_probs = metrics.raw_probs(x) if champ_recipe is None else evidence.probs[champ_recipe]
    refresh = chosen == champ_recipe
    comparison = paired_bootstrap(ch_probs, base_probs, t, w, ece=ece, n_resamples=n_resamples, level=level,
                                  seed=comparison_seed, gain_level=1 - (1 - level) / len(fitted))
    challenger = _fit_on_all(chosen, method, labels, x, t, w, a, evidence, fitted)
    how = (f"{evidence.folds}-fold out-of-fold predictions of all {n} labels"
           + (f", the best of {len(fitted)} recipes by NLL (its bound Bonferroni-adjusted)" if len(fitted) > 1 else ""))
    if refresh:
        forward = {"ran": False, "refuses": False, "reason": "the challenger's recipe is the champion's"}
        if challenger.to_dict() == load_document(champion_document, task_version).to_dict():  # nothing to store
            return refuse(f"the champion's recipe ({chosen}) refitted on these {n} labels is the champion itself: no "
                          "label changed since its fit", candidates=candidates, method=chosen, refresh=True)
        promote, reason = True, (f"refresh: the champion's recipe ({chosen}) is still the best, refitted on all "
                                 f"{n} labels (the champion saw {champion_document['n_labels']})")
    else:
        forward = forward_check(chosen, champ_recipe, labels, x, t, w, a, nights, min_labels=min_labels, ece=ece,
                                n_resamples=n_resamples, level=level, seed=comparison_seed)
        promote, reason = verdict(comparison, against)
        if promote and forward["refuses"]:
            promote, reason = False, f"{reason}, but the forward check refuses: {forward['reason']}"
    return Decision(
        promote=promote,
        reason=f"{reason}; {how}",
        challenger_metrics=metrics.reliability_report(ch_probs, t, w, n_bins),
        champion_metrics=metrics.reliability_report(base_probs, t, w, n_bins),
        evaluation=OUT_OF_FOLD,
        comparison=comparison,
        forward=forward,
        fit_window=(iso_utc(ts.min()), iso_utc(ts.max())),
        challenger=challenger,
        method=chosen,
        candidates=candidates,
        refresh=refresh,
        **common,
    )


def _fit_on_all(chosen: str, method: str, labels: tuple[str, ...], x: np.ndarray, t: np.ndarray,
                w: np.ndarray | None, a: np.ndarray | None, evidence: OutOfFold, fitted: list[str]) -> BaseCalibrator:
    """The challenger to store: `chosen` fitted on every row; for `auto`, wrapped with its choice and the
    out-of-fold NLL of every recipe it chose among."""
    cal = _fit_recipe(chosen, labels, x, t, w, a)
    if method != "auto":
        return cal
    return AutoCalibrator.chosen_by_evidence(
        cal, cv_nll={r: evidence.nll(r, t, w) for r in fitted}, skipped=dict(evidence.skipped),
        folds=evidence.folds, seed=evidence.seed)
