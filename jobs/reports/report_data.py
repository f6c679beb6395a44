"""What the report of one task shows, as data: what it reads from the warehouse, and the headline numbers.

The headline's calibration figures never come from a map that saw the row: the
champion (or, before any champion, the raw scores) on every current label, judged
by the champion's own prediction where it was not fitted on the row and by its
recipe's out-of-fold prediction where it was (`evidence_base.load_judged_labels`),
each figure with its n, a 95% interval, what it rests on and which label designs
(convenience labels never enter it when sample labels exist: `headline_labels`).
Row-level figures (reliability, buckets, thresholds, segments) use the rows
scored on `night`, or all rows: their volumes are counted in DuckDB
(`counts`), their accuracies come from the labeled rows (`labeled`), the only
rows read one by one; the label budget uses every labeled row of the task
version; history, trend and nightly counts cover the task version up to that
night.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from calscore.calibration_store import metrics
from calscore.calibration_store.document import recipe_of
from calscore.calibration_store.ece_intervals import BOOTSTRAP_ROWS
from calscore.calibration_store.store import champion as champion_document
from calscore.jobs.calibrators.evidence_base import JudgedLabels, basis_text, headline_labels, load_judged_labels
from calscore.jobs.reports import queries
from calscore.jobs.reports.bucket_chart import bucket_stats
from calscore.jobs.common.intervals import weighted_proportion, wilson_interval
from calscore.jobs.reports.segments import segment_stats
from calscore.jobs.reports.thresholds import THRESHOLDS, choose_threshold, describe_choice, threshold_table
from calscore.jobs.spec import TaskSpec

DEFAULT_TARGET = 0.90
HELDOUT_BOOTSTRAP = 200  # resamples of each held-out ECE / NLL interval (seed 0), ece_bootstrap_ci's default
HELDOUT_LEVEL = 0.95


@dataclass
class SummaryData:
    """What the headline numbers need: one task's row counts and labeled rows (of one night or all), its
    calibrator history, and the headline's figures with the labels they rest on (`judged`: the champion judged on
    each by a map that never saw it, which the reliability diagrams draw)."""

    spec: TaskSpec
    night: date | None
    counts: queries.RowCounts
    labeled: queries.ReportRows
    history: list[dict]
    heldout: dict
    judged: JudgedLabels

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


def _summary_parts(con, spec: TaskSpec, night: date | None, up_to: bool = False) -> tuple[
        dict[str, Any], queries.RowCounts, queries.ReportRows]:
    """The summary's inputs; with `up_to`, also the counts and labeled rows of every night up to `night` they were
    cut from (the nightly table's: one scan of the warehouse each, whichever scope)."""
    tv = spec.task_version
    all_counts = queries.load_counts(con, tv, night, up_to=up_to)
    counts = all_counts.of_night(night) if up_to else all_counts
    if night is not None and counts.total == 0:
        known = ", ".join(str(n) for n in queries.nights(con, tv)) or "none yet"
        raise ValueError(f"task {spec.name} has no predictions scored on night {night} (nights: {known})")
    all_labeled = queries.load_rows(con, tv, night, labeled_only=True, up_to=up_to)
    history = queries.calibrator_history(con, tv)
    doc, judged, used = headline_evidence(con, spec, night)
    parts = {"spec": spec, "night": night, "counts": counts,
             "labeled": all_labeled.take(all_labeled.night == night) if up_to and night else all_labeled,
             "history": history, "heldout": _heldout(doc, judged, used), "judged": judged}
    return parts, all_counts, all_labeled


def nightly_counts(counts: queries.RowCounts, labeled: queries.ReportRows) -> list[dict]:
    """Per night and bucket, oldest first: rows, their share of the night, off-format rows and labeled rows
    (each labeled row in the bucket its judged prediction lands in, as bucket_counts_nightly counts them)."""
    judged = Counter(zip(labeled.night[labeled.is_labeled].tolist(), labeled.bucket[labeled.is_labeled].tolist()))
    out = []
    for night, buckets in counts.by_night().items():
        total = sum(rows for rows, _ in buckets.values())
        out += [{"night": night, "bucket": bucket, "rows": rows, "share_of_night": rows / total,
                 "off_format_rows": off_rows, "labeled_rows": judged[(night, bucket)]}
                for bucket, (rows, off_rows) in sorted(buckets.items())]
    return out


def _nll_bootstrap_ci(p_true: np.ndarray, w: np.ndarray, n_boot: int, level: float, seed: int = 0) -> tuple:
    """Percentile bootstrap interval of the weighted mean log-loss (rows resampled, weights kept), each row's
    loss -log p(true label) with p floored at the float epsilon as sklearn's log_loss does. Above
    BOOTSTRAP_ROWS rows, m out of n with the deviations scaled by sqrt(m / n), as the ECE's."""
    loss = -np.log(np.clip(p_true, np.finfo(float).eps, 1.0))
    n = loss.shape[0]
    m = min(n, BOOTSTRAP_ROWS)
    estimate = float(w @ loss / w.sum())
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):  # one resample at a time: memory stays that of the rows
        idx = rng.integers(0, n, size=m)
        values.append(estimate + np.sqrt(m / n) * (float(w[idx] @ loss[idx] / w[idx].sum()) - estimate))
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def _heldout_numbers(probs: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """n, accuracy (95% Wilson on Kish's effective n), ECE (15 equal-width bins) and NLL with 95% bootstrap
    intervals, of one set of probabilities on judged rows (weights: 1 / inclusion probability)."""
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


def headline_evidence(con, spec: TaskSpec, night: date | None = None) -> tuple[dict | None, JudgedLabels, str]:
    """The champion's document (None before any), the current labels (of `night`, or all) the headline rests on
    with the raw and the champion's probabilities, each judged by a map that never saw it, and which labels
    those are (`headline_labels`)."""
    doc = champion_document(con, spec.task_version)
    judged, used = headline_labels(load_judged_labels(con, spec, doc, night))
    return doc, judged, used


def heldout_figures(con, spec: TaskSpec, night: date | None = None) -> dict:
    """The headline's evidence: the champion's calibrated and the raw figures on the current labels (of `night`,
    or all), each judged by a map that never saw it; before any champion, the raw figures. Also what the figures
    rest on (`basis`: rows held out / out-of-fold), which labels (`labels`: designs used and left out) and the
    champion's recipe."""
    return _heldout(*headline_evidence(con, spec, night))


def _heldout(doc: dict | None, judged: JudgedLabels, used: str) -> dict:
    out: dict[str, Any] = {"champion": None if doc is None else doc["version"], "n": len(judged), "raw": None,
                           "calibrated": None, "labels": used, "designs": judged.counts("design"),
                           "basis": basis_text(judged, None if doc is None else recipe_of(doc))}
    if len(judged):
        out["raw"] = _heldout_numbers(judged.raw, judged.y, judged.weight)
        if judged.calibrated is not None:
            out["calibrated"] = _heldout_numbers(judged.calibrated, judged.y, judged.weight)
    return out


def champion_heldout(spec: TaskSpec, night: date | str | None = None) -> dict:
    """`heldout_figures` in a short read-only session of its own (what `calscore status` shows)."""
    with queries.report_connection(spec.warehouse.path) as con:
        return heldout_figures(con, spec, queries.parse_night(night))


def _ci(pair: tuple) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def heldout_sentence(h: dict, level: float = HELDOUT_LEVEL) -> str:
    """The evidence in one plain sentence (the report's headline, the Markdown summary, `calscore status`): every
    figure with its n and 95% interval, what it rests on and which labels, or what cannot be shown and why."""
    raw, cal = h["raw"], h["calibrated"]
    pct = f"{level:.0%}"
    intervals = f"({pct} intervals: bootstrap for ECE and NLL, Wilson for accuracy; labels: {h['labels']})"
    if cal is not None:
        return (f"champion {h['champion']} on {cal['n']} labels, none judged by a map that saw it "
                f"({h['basis']}): ECE {raw['ece']:.3f} {_ci(raw['ece_ci'])} raw → {cal['ece']:.3f} "
                f"{_ci(cal['ece_ci'])} calibrated; accuracy {cal['accuracy']:.3f} {_ci(cal['accuracy_ci'])} calibrated, "
                f"{raw['accuracy']:.3f} {_ci(raw['accuracy_ci'])} raw; NLL {raw['nll']:.3f} {_ci(raw['nll_ci'])} raw → "
                f"{cal['nll']:.3f} {_ci(cal['nll_ci'])} calibrated {intervals}")
    if raw is not None:
        return (f"raw scores, no calibrator yet, n={raw['n']}: ECE {raw['ece']:.3f} {_ci(raw['ece_ci'])}; "
                f"accuracy {raw['accuracy']:.3f} {_ci(raw['accuracy_ci'])}; NLL {raw['nll']:.3f} {_ci(raw['nll_ci'])} "
                f"{intervals}")
    if h["champion"] is None:
        return "no labeled rows yet: no calibration figure to show"
    return (f"champion {h['champion']}: no label it can be judged on without having seen it (its fit rows have no "
            "out-of-fold evidence yet: run calscore recalibrate)")


def load_summary_data(spec: TaskSpec, night: date | str | None = None) -> SummaryData:
    """What the headline numbers need (the Markdown summary a flow attaches after every run), read-only."""
    night = queries.parse_night(night)
    with queries.report_connection(spec.warehouse.path) as con:
        return SummaryData(**_summary_parts(con, spec, night)[0])


def load_report_data(spec: TaskSpec, night: date | str | None = None) -> ReportData:
    """Everything the report shows, read in one short read-only session."""
    night = queries.parse_night(night)
    tv = spec.task_version
    with queries.report_connection(spec.warehouse.path) as con:
        parts, all_counts, all_labeled = _summary_parts(con, spec, night, up_to=True)
        judged = parts["judged"]  # the label budget fits on the headline's labels, raw scores as stored
        return ReportData(
            **parts,
            scores=queries.LabeledScores(row_id=judged.row_id, logprobs=judged.logprobs, y=judged.y,
                                         weight=judged.weight),
            nightly=nightly_counts(all_counts, all_labeled),
            trend=queries.calibration_trend(con, tv),
            champion_method=queries.champion_method(con, tv),
            health=queries.health_checks(con, spec.name),
        )


def reliability_inputs(judged: JudgedLabels, view: str = "top-label") -> dict[str, Any]:
    """What the reliability diagrams draw: the headline's labels, raw and calibrated (the champion, each row
    judged by a map that never saw it; None before any champion), so a diagram shows what the headline measures
    whatever calibrator decided the rows (after a manual promotion they may still be raw-decided).

    Top-label view: each row's highest probability and whether its label is right; positive-class view: P(the
    first label) and whether the row is it."""
    def outcome(probs: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        if probs is None:
            return None, None
        if view == "positive-class":
            return probs[:, 0], judged.y == 0
        return probs.max(axis=1), probs.argmax(axis=1) == judged.y

    (raw_confidence, raw_correct), (calibrated_confidence, calibrated_correct) = map(outcome, (judged.raw,
                                                                                              judged.calibrated))
    return {"raw_confidence": raw_confidence, "raw_correct": raw_correct,
            "calibrated_confidence": calibrated_confidence, "calibrated_correct": calibrated_correct,
            "weights": judged.weight}


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


def labels_note(labeled: queries.ReportRows) -> str:
    """Which labels the row-level figures (buckets, segments) rest on, by design and basis, with a visible warning
    when convenience labels are among them (the reliability diagrams rest on the headline's labels)."""
    rows = labeled.take(labeled.is_labeled)
    if not len(rows):
        return "Row-level figures: no labels yet."
    designs = ", ".join(f"{int((rows.label_design == d).sum())} {d}" for d in ("audit", "random", "convenience")
                        if (rows.label_design == d).any())
    oof = int((rows.evidence_basis == "out_of_fold").sum())
    note = (f"Row-level figures (buckets, segments) use {len(rows)} labels: {designs}; "
            f"{oof} judged by out-of-fold predictions, {len(rows) - oof} never seen by the deciding calibrator.")
    if (rows.label_design == "convenience").any():
        note += (" Warning: convenience labels are not a sample of the predictions, so figures that include them "
                 "may not hold for all rows; the headline, the reliability diagrams and the threshold certification "
                 "leave them out.")
    return note


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
        "audit_labeled": int((labeled.is_labeled & np.isin(labeled.label_design, ("audit", "random"))).sum()),
        "certifying": int(labeled.is_audit_label.sum()),  # sample labels the deciding calibrator never saw
        "buckets": task_buckets(data.spec, counts, labeled),
        "heldout": data.heldout,
        "heldout_sentence": heldout_sentence(data.heldout),
        "labels_note": labels_note(labeled),
        "target": target,
        "threshold": choose_threshold(table, target),
        "threshold_sentence": describe_choice(table, target, counts.total),
        "champion": None if champion is None else {"version": champion["version"], "method": champion["method"],
                                                   "n_labels": champion["n_labels"]},
    }
