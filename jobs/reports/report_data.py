"""What the report of one task shows, as data: what it reads from the warehouse, and the headline numbers.

Row-level figures (reliability, buckets, thresholds, segments) use the rows
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

from calscore.jobs.reports import queries
from calscore.jobs.reports.bucket_chart import bucket_stats
from calscore.jobs.reports.reliability_diagram import reliability_numbers
from calscore.jobs.reports.segments import segment_stats
from calscore.jobs.reports.thresholds import THRESHOLDS, choose_threshold, describe_choice, threshold_table
from calscore.jobs.spec import TaskSpec

DEFAULT_TARGET = 0.90


@dataclass
class SummaryData:
    """What the headline numbers need: one task's row counts and labeled rows (of one night or all) and its
    calibrator history."""

    spec: TaskSpec
    night: date | None
    counts: queries.RowCounts
    labeled: queries.ReportRows
    history: list[dict]

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
    return {"spec": spec, "night": night, "counts": counts,
            "labeled": queries.load_rows(con, tv, night, labeled_only=True),
            "history": queries.calibrator_history(con, tv)}


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
    rel = reliability_inputs(labeled)
    w = rel["weights"]
    raw = reliability_numbers(rel["raw_confidence"], rel["raw_correct"], w)
    cal = (None if rel["calibrated_confidence"] is None
           else reliability_numbers(rel["calibrated_confidence"], rel["calibrated_correct"], w))
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
        "raw": {k: raw[k] for k in ("n", "accuracy", "ece", "mce")},
        "calibrated": None if cal is None else {k: cal[k] for k in ("n", "accuracy", "ece", "mce")},
        "target": target,
        "threshold": choose_threshold(table, target),
        "threshold_sentence": describe_choice(table, target, counts.total),
        "champion": None if champion is None else {"version": champion["version"], "method": champion["method"],
                                                   "n_labels": champion["n_labels"]},
    }
