"""What the report of one task shows, as data: what it reads from the warehouse, and the headline numbers.

The headline's calibration figures are held out: the champion (or, before any
champion, the raw scores) on the current labels it was not fitted on, each with
its n and a 95% interval (`heldout_figures`); right after a promotion, when the
champion has seen every label, the promotion's own held-out figures are quoted
instead, as such. Row-level figures (reliability, buckets, thresholds, segments) use the rows
scored on `night`, or all rows: their volumes are counted in DuckDB
(`counts`), their accuracies come from the labeled rows (`labeled`), the only
rows read one by one; the label budget uses every labeled row of the task
version; history, trend and nightly counts cover the task version up to that
night.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from calscore.calibration_store import metrics
from calscore.calibration_store.combined import calibrator_input
from calscore.calibration_store.document import load_document
from calscore.calibration_store.metrics import raw_probs
from calscore.calibration_store.store import champion as champion_document
from calscore.jobs.decisions import agreement_signal
from calscore.jobs.reports import queries
from calscore.jobs.reports.bucket_chart import bucket_stats
from calscore.jobs.reports.intervals import weighted_proportion, wilson_interval
from calscore.jobs.reports.segments import segment_stats
from calscore.jobs.reports.thresholds import THRESHOLDS, choose_threshold, describe_choice, threshold_table
from calscore.jobs.spec import TaskSpec

DEFAULT_TARGET = 0.90
HELDOUT_BOOTSTRAP = 200  # resamples of each held-out ECE / NLL interval (seed 0), ece_bootstrap_ci's default
HELDOUT_LEVEL = 0.95
NO_HELDOUT = "no labels the champion has not seen yet; import new labels to measure it"


@dataclass
class SummaryData:
    """What the headline numbers need: one task's row counts and labeled rows (of one night or all) and its
    calibrator history."""

    spec: TaskSpec
    night: date | None
    counts: queries.RowCounts
    labeled: queries.ReportRows
    history: list[dict]
    heldout: dict

    @property
    def scope(self) -> str:
        """The rows the row-level figures cover, as titles and headings name them."""
        return f"night {self.night}" if self.night else "all nights"


@dataclass
class ReportData(SummaryData):
    """The whole report's inputs: the summary's, and the labeled scores, nightly counts and calibration trend."""

    scores: queries.LabeledScores
    nightly: list[dict]
    trend: list[dict]
    champion_method: str | None
    health: list[dict]


def _summary_parts(con, spec: TaskSpec, night: date | None) -> dict[str, Any]:
    tv = spec.task_version
    counts = queries.load_counts(con, tv, night)
    if night is not None and counts.total == 0:
        known = ", ".join(str(n) for n in queries.nights(con, tv)) or "none yet"
        raise ValueError(f"task {spec.name} has no predictions scored on night {night} (nights: {known})")
    history = queries.calibrator_history(con, tv)
    return {"spec": spec, "night": night, "counts": counts,
            "labeled": queries.load_rows(con, tv, night, labeled_only=True),
            "history": history, "heldout": heldout_figures(con, spec, night, history)}


def _nll_bootstrap_ci(p_true: np.ndarray, w: np.ndarray, n_boot: int, level: float, seed: int = 0) -> tuple:
    """Percentile bootstrap interval of the weighted mean log-loss (rows resampled, weights kept), each row's
    loss -log p(true label) with p floored at the float epsilon as sklearn's log_loss does."""
    loss = -np.log(np.clip(p_true, np.finfo(float).eps, 1.0))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):  # one resample at a time: memory stays that of the rows
        idx = rng.integers(0, loss.shape[0], size=loss.shape[0])
        values.append(float(w[idx] @ loss[idx] / w[idx].sum()))
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def _heldout_numbers(probs: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """n, accuracy (95% Wilson on Kish's effective n), ECE (15 equal-width bins) and NLL with 95% bootstrap
    intervals, of one set of probabilities on held-out rows (weights: 1 / inclusion probability)."""
    correct = probs.argmax(axis=1) == y
    accuracy, n_eff, _ = weighted_proportion(correct, w)
    return {
        "n": int(y.shape[0]),
        "n_eff": n_eff,
        "accuracy": accuracy,
        "accuracy_ci": wilson_interval(accuracy, n_eff, HELDOUT_LEVEL),
        "ece": metrics.ece(probs, y, weights=w),
        "ece_ci": metrics.ece_bootstrap_ci(probs, y, w, n_boot=HELDOUT_BOOTSTRAP, level=HELDOUT_LEVEL),
        "nll": metrics.nll(probs, y, w),
        "nll_ci": _nll_bootstrap_ci(probs[np.arange(y.shape[0]), y], w, HELDOUT_BOOTSTRAP, HELDOUT_LEVEL),
    }


def _at_promotion(history: list[dict], version: str) -> dict[str, Any] | None:
    """The held-out figures the champion's promotion decided on (its newest `promoted` event's metrics), or None
    when no such figures were recorded (a manual promotion, or an older event)."""
    for h in reversed(history):
        m = h.get("metrics")
        if (h["version"] == version and h["event"] == "promoted" and isinstance(m, dict) and m.get("n_holdout")
                and isinstance(m.get("challenger"), dict) and isinstance(m.get("baseline_metrics"), dict)):
            comparison = m.get("comparison") or {}
            return {"n": int(m["n_holdout"]), "evaluation": m.get("evaluation"), "baseline": m.get("baseline"),
                    "challenger": m["challenger"], "baseline_metrics": m["baseline_metrics"],
                    "nll_gain": comparison.get("nll_gain"), "level": comparison.get("level"),
                    "refit": m.get("refit_on_all_labels")}
    return None


def heldout_figures(con, spec: TaskSpec, night: date | None = None, history: list[dict] | None = None) -> dict:
    """The headline's evidence: the champion's calibrated and the raw figures on the current labels (of `night`,
    or all) the champion was not fitted on, its recorded fit rows left out in SQL; before any champion, the raw
    figures on every current label. With a champion and no such label, `calibrated` and `raw` are None and
    `at_promotion` holds its promotion's own held-out figures, if recorded."""
    tv = spec.task_version
    doc = champion_document(con, tv)
    version = None if doc is None else doc["version"]
    scores = queries.load_heldout_scores(con, spec.name, tv, spec.label_names, version, night)
    n = int(scores.y.shape[0])
    out: dict[str, Any] = {"champion": version, "n": n, "raw": None, "calibrated": None, "at_promotion": None}
    if n:
        out["raw"] = _heldout_numbers(raw_probs(scores.logprobs), scores.y, scores.weight)
        if doc is not None:
            cal = load_document(doc, tv)
            probs = cal.predict_proba(calibrator_input(cal, scores.logprobs, agreement_signal(spec, scores.sampled)))
            out["calibrated"] = _heldout_numbers(probs, scores.y, scores.weight)
    elif version is not None:
        out["at_promotion"] = _at_promotion(history if history is not None else queries.calibrator_history(con, tv),
                                            version)
    return out


def champion_heldout(spec: TaskSpec, night: date | str | None = None) -> dict:
    """`heldout_figures` in a short read-only session of its own (what `calscore status` shows)."""
    with queries.report_connection(spec.warehouse.path) as con:
        return heldout_figures(con, spec, queries.parse_night(night))


def _ci(pair: tuple) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def heldout_sentence(h: dict, level: float = HELDOUT_LEVEL) -> str:
    """The held-out evidence in one plain sentence (the report's headline, the Markdown summary, `calscore
    status`): every figure with its n and 95% interval, or what cannot be shown and why."""
    raw, cal = h["raw"], h["calibrated"]
    pct = f"{level:.0%}"
    if cal is not None:
        return (f"held out from champion {h['champion']} (labels it was not fitted on), n={cal['n']}: "
                f"ECE {raw['ece']:.3f} {_ci(raw['ece_ci'])} raw → {cal['ece']:.3f} {_ci(cal['ece_ci'])} calibrated; "
                f"accuracy {cal['accuracy']:.3f} {_ci(cal['accuracy_ci'])} calibrated, "
                f"{raw['accuracy']:.3f} {_ci(raw['accuracy_ci'])} raw; "
                f"NLL {raw['nll']:.3f} {_ci(raw['nll_ci'])} raw → {cal['nll']:.3f} {_ci(cal['nll_ci'])} calibrated "
                f"({pct} intervals: bootstrap for ECE and NLL, Wilson for accuracy)")
    if raw is not None:
        return (f"raw scores, no calibrator yet (none was fitted on these labels), n={raw['n']}: "
                f"ECE {raw['ece']:.3f} {_ci(raw['ece_ci'])}; accuracy {raw['accuracy']:.3f} "
                f"{_ci(raw['accuracy_ci'])}; NLL {raw['nll']:.3f} {_ci(raw['nll_ci'])} "
                f"({pct} intervals: bootstrap for ECE and NLL, Wilson for accuracy)")
    if h["champion"] is None:
        return "no labeled rows yet: no calibration figure to show"
    sentence = f"champion {h['champion']}: {NO_HELDOUT}"
    p = h["at_promotion"]
    if p is None:
        return sentence
    c, b = p["challenger"], p["baseline_metrics"]
    lo, hi = wilson_interval(c["accuracy"], p["n"], level) if c.get("accuracy") is not None else (None, None)
    sentence += (f". At promotion, on {p['n']} held-out rows ({p['evaluation']}), the method as evaluated, before "
                 f"its refit on all labels: ECE {c['ece']:.3f} [{c['ece_ci_low']:.3f}, {c['ece_ci_high']:.3f}] vs "
                 f"{b['ece']:.3f} [{b['ece_ci_low']:.3f}, {b['ece_ci_high']:.3f}] for {p['baseline']}")
    if lo is not None:
        sentence += f"; accuracy {c['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"
    if c.get("nll") is not None and b.get("nll") is not None:
        sentence += f"; NLL {c['nll']:.3f} vs {b['nll']:.3f}"
        gain = p["nll_gain"]
        if gain:
            sentence += (f" (gain {gain['estimate']:+.4f}, one-sided {p['level'] or level:.0%} bounds "
                         f"[{gain['low']:+.4f}, {gain['high']:+.4f}])")
    return sentence


def load_summary_data(spec: TaskSpec, night: date | str | None = None) -> SummaryData:
    """What the headline numbers need (the Markdown summary a flow attaches after every run), read-only."""
    night = queries.parse_night(night)
    with queries.report_connection(spec.warehouse.path) as con:
        return SummaryData(**_summary_parts(con, spec, night))


def load_report_data(spec: TaskSpec, night: date | str | None = None) -> ReportData:
    """Everything the report shows, read in one short read-only session."""
    night = queries.parse_night(night)
    tv = spec.task_version
    with queries.report_connection(spec.warehouse.path) as con:
        return ReportData(
            **_summary_parts(con, spec, night),
            scores=queries.load_labeled_scores(con, tv, spec.label_names),
            nightly=queries.nightly_bucket_counts(con, tv, until=night),
            trend=queries.calibration_trend(con, tv),
            champion_method=queries.champion_method(con, tv),
            health=queries.health_checks(con, spec.name),
        )


def reliability_inputs(rows: queries.ReportRows) -> dict[str, Any]:
    """Raw and calibrated confidence/correctness of the same labeled rows, with their weights.

    The rows are the labeled ones with a calibrated confidence; when no row has one yet (no calibrator was
    ever applied) only the raw figures exist, on every labeled row.
    """
    sel = rows.calibrated_labeled
    calibrated = bool(sel.any())
    if not calibrated:
        sel = rows.is_labeled
    return {
        "raw_confidence": rows.raw_confidence[sel],
        "raw_correct": rows.raw_correct[sel],
        "calibrated_confidence": rows.confidence[sel] if calibrated else None,
        "calibrated_correct": rows.is_correct[sel] if calibrated else None,
        "weights": rows.label_weight[sel],
        "segment": rows.segment[sel],
    }


def task_thresholds(counts: queries.RowCounts, labeled: queries.ReportRows) -> list[dict]:
    """The threshold table on the confidences the buckets were cut on (off-format rows never automated)."""
    return threshold_table(labeled.decision_confidence, ~labeled.off_format, labeled.is_audit_label,
                           labeled.is_correct, labeled.label_weight, volume=counts.at_or_above(THRESHOLDS))


def task_buckets(spec: TaskSpec, counts: queries.RowCounts, labeled: queries.ReportRows) -> list[dict]:
    """Rows and labeled accuracy per decision bucket."""
    return bucket_stats(spec.buckets, labeled.bucket, labeled.is_correct, labeled.is_labeled, labeled.label_weight,
                        rows=counts.by_bucket())


def task_segments(spec: TaskSpec, counts: queries.RowCounts, labeled: queries.ReportRows) -> list[dict]:
    """Per-segment figures on the calibrated confidences, or on the raw ones before any calibrator."""
    if not labeled.calibrated_labeled.any():  # no calibrator yet: the raw view of every labeled row
        confidence, correct = labeled.raw_confidence, labeled.raw_correct
    else:
        confidence, correct = labeled.confidence, labeled.is_correct
    return segment_stats(labeled.segment, confidence, correct, labeled.is_labeled, labeled.bucket, spec.buckets,
                         labeled.label_weight, rows=counts.by_segment())


def budget_method(spec: TaskSpec, champion_method: str | None) -> str:
    """The task's calibration method; for `auto`, what the champion chose (temperature before any champion)."""
    if spec.calibration.method != "auto":
        return spec.calibration.method
    return champion_method or "temperature"


def summary(data: SummaryData, target: float = DEFAULT_TARGET) -> dict[str, Any]:
    """The headline numbers of the report (what the Markdown summary prints)."""
    counts, labeled = data.counts, data.labeled
    table = task_thresholds(counts, labeled)
    champion = next((h for h in reversed(data.history) if h["current_status"] == "champion"), None)
    return {
        "task": data.spec.name,
        "task_version": data.spec.task_version,
        "night": data.night,
        "rows": counts.total,
        "labeled": int(labeled.is_labeled.sum()),
        "audit_labeled": int(labeled.is_audit_label.sum()),
        "buckets": task_buckets(data.spec, counts, labeled),
        "heldout": data.heldout,
        "heldout_sentence": heldout_sentence(data.heldout),
        "target": target,
        "threshold": choose_threshold(table, target),
        "threshold_sentence": describe_choice(table, target, counts.total),
        "champion": None if champion is None else {"version": champion["version"], "method": champion["method"],
                                                   "n_labels": champion["n_labels"]},
    }
