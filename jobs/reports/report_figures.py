"""The report's figures: every PNG the data allows, drawn into one folder, each with the numbers it shows.

A figure the data cannot support yet (no labels, no snapshots, too few labels
for a label-budget curve) is not drawn; its entry says why instead.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure

from calscore.jobs.reports.bucket_chart import bucket_chart
from calscore.jobs.reports.bucket_order import order_warnings
from calscore.jobs.reports.classwise import classwise_chart, confusion_chart
from calscore.jobs.reports.label_budget import label_budget_chart, label_budgets
from calscore.jobs.reports.plotting import CALIBRATED_COLOR, RAW_COLOR, error_bars, legend_outside, save
from calscore.jobs.reports.reliability_diagram import figure_title, reliability_diagram
from calscore.jobs.reports.report_data import (
    DEFAULT_TARGET,
    ReportData,
    budget_method,
    reliability_inputs,
    task_buckets,
    task_segments,
    task_thresholds,
)
from calscore.jobs.reports.segments import segment_chart
from calscore.jobs.reports.thresholds import threshold_chart

MIN_BUDGET_LABELS = 70


def trend_window(times: list[datetime]) -> tuple[datetime, datetime]:
    """The trend's x range: the snapshots' span with 5% padding each side (at least an hour), or one day either
    side of a single snapshot."""
    first, last = min(times), max(times)
    if last - first < timedelta(minutes=1):
        return first - timedelta(days=1), last + timedelta(days=1)
    pad = max((last - first) * 0.05, timedelta(hours=1))
    return first - pad, last + pad


def trend_chart(trend: list[dict], path: Path, title: str | None = None) -> dict:
    """ECE of each reliability snapshot over time (segment 'all'), raw and calibrated, with its interval; the
    time axis spans the snapshots (see `trend_window`)."""
    fig = Figure(figsize=(7.6, 3.7), layout="constrained")
    ax = fig.subplots()
    drawn = {}
    for scores, color in (("raw", RAW_COLOR), ("calibrated", CALIBRATED_COLOR)):
        points = [t for t in trend if t["scores"] == scores and t["ece"] is not None]
        if not points:
            continue
        x = [t["created_at"] for t in points]
        y = np.array([t["ece"] for t in points])
        low = np.array([t["ece_ci_low"] if t["ece_ci_low"] is not None else t["ece"] for t in points])
        high = np.array([t["ece_ci_high"] if t["ece_ci_high"] is not None else t["ece"] for t in points])
        ax.errorbar(x, y, yerr=error_bars(y, low, high), fmt="o-", color=color,
                    capsize=3, label=scores)
        drawn[scores] = [{"snapshot_id": t["snapshot_id"], "created_at": t["created_at"], "ece": t["ece"]}
                         for t in points]
    times = [p["created_at"] for series in drawn.values() for p in series]
    window = trend_window(times) if times else None
    if window:
        ax.set_xlim(*window)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set(ylabel="ECE (15 bins), 95% interval", ylim=(0, None),
           title=title or "Calibration trend (reliability snapshots)")
    ax.title.set_fontsize(9.5)
    ax.grid(alpha=0.3)
    legend_outside(fig, ax, ncols=2, fontsize=8)
    return {"path": save(fig, path), "series": drawn, "x_range": window}


def render_figures(data: ReportData, out_dir: Path, stem: str, target: float = DEFAULT_TARGET) -> dict[str, Any]:
    """Draw every figure the data allows into out_dir; return each one's numbers (or why it was skipped).

    The reliability diagrams (and, for more than two labels, class-wise reliability and the confusion matrix)
    draw the headline's labels, the champion judged on each by a map that never saw it (`data.judged`)."""
    spec, counts, labeled, scope = data.spec, data.counts, data.labeled, data.scope
    champion = data.heldout.get("champion")

    def title(what: str) -> str:
        return figure_title(spec.name, f"{what}, {scope}", champion, data.night)

    out: dict[str, Any] = {}
    if len(data.judged):
        k = len(spec.label_names)
        what = title(f"reliability of the headline's {len(data.judged)} labels")
        out["reliability"] = _reliability_figure(data.judged, out_dir / f"{stem}-reliability.png", what,
                                                 view="top-label", n_labels=k)
        if k == 2:
            out["reliability_positive"] = _reliability_figure(
                data.judged, out_dir / f"{stem}-reliability-positive.png", what, view="positive-class",
                positive=spec.label_names[0])
        else:
            out.update(_multiclass_figures(data.judged, spec.label_names, out_dir, stem, title))
    else:
        out["reliability"] = {"skipped": "no labeled rows yet"}
    if counts.total:
        out["buckets"] = bucket_chart(task_buckets(spec, counts, labeled), out_dir / f"{stem}-buckets.png",
                                      title=title("decision buckets"))
        audit = labeled.is_audit_label
        out["buckets"]["order_warnings"] = [w["text"] for w in order_warnings(
            spec.buckets, labeled.bucket[audit], labeled.off_format[audit], labeled.is_correct[audit],
            labeled.label_weight[audit])]
        out["thresholds"] = threshold_chart(task_thresholds(counts, labeled), out_dir / f"{stem}-thresholds.png",
                                            target, title=title("threshold analysis"))
    else:
        out["buckets"] = out["thresholds"] = {"skipped": "no predictions"}
    segments = set(counts.segment.tolist()) - {"(none)"}
    if segments and labeled.is_labeled.any():
        out["segments"] = segment_chart(task_segments(spec, counts, labeled), out_dir / f"{stem}-segments.png",
                                        title=title("reliability per segment"), n_labels=len(spec.label_names))
    else:
        out["segments"] = {"skipped": "the batches carry no segment column" if not segments else "no labeled rows"}
    out["label_budget"] = _label_budget_figure(data, out_dir / f"{stem}-label-budget.png", champion)
    if data.trend:
        out["trend"] = trend_chart(data.trend, out_dir / f"{stem}-trend.png",
                                   title=figure_title(spec.name, "calibration trend of the reliability snapshots",
                                                      champion, data.night))
    else:
        out["trend"] = {"skipped": "no reliability snapshots yet"}
    return out


def _reliability_figure(judged, path: Path, title: str, **view) -> dict[str, Any]:
    rel = reliability_inputs(judged, view["view"])
    return reliability_diagram(rel["raw_confidence"], rel["raw_correct"], rel["calibrated_confidence"],
                               rel["calibrated_correct"], path, weights=rel["weights"], title=title, **view)


def _multiclass_figures(judged, labels, out_dir: Path, stem: str, title) -> dict:
    """Class-wise reliability and the confusion matrix of the headline's labels (decided: the champion's top
    label, the raw one before any champion)."""
    inputs = {"raw": judged.raw, "calibrated": judged.calibrated, "y": judged.y, "weights": judged.weight,
              "decided": (judged.raw if judged.calibrated is None else judged.calibrated).argmax(axis=1)}
    what = f"of the headline's {len(judged)} labels"
    return {"classwise": classwise_chart(inputs, labels, out_dir / f"{stem}-classwise.png",
                                         title(f"class-wise reliability {what}")),
            "confusion": confusion_chart(inputs, labels, out_dir / f"{stem}-confusion.png",
                                         title(f"confusion matrix {what}"))}


# The label-budget curve's points in a report: its cost is fixed (5 x 20 fits on at most 2,000 rows, plus one).
REPORT_BUDGET_SIZES = (100, 200, 500, 1000, 2000)
REPORT_BUDGET_HOLDOUT = 2_000


def _label_budget_figure(data: ReportData, path: Path, champion: str | None = None) -> dict[str, Any]:
    """The deployed recipe's label-budget curve and answer, at a fixed cost however many labels the warehouse
    holds: `REPORT_BUDGET_SIZES` points of 20 fits on at most 2,000 rows each, and the one all-labels fit, all
    scored on at most 2,000 held-out rows (every candidate's figures on all labels are the recalibration's)."""
    scores = data.scores
    method = budget_method(data.spec, data.champion_method)
    if scores.y.shape[0] < MIN_BUDGET_LABELS:
        return {"skipped": f"{scores.y.shape[0]} labeled rows; a curve needs {MIN_BUDGET_LABELS}"}
    try:
        result = label_budgets(scores.logprobs, scores.y, data.spec.label_names, (method,), scores.weight,
                               sizes=REPORT_BUDGET_SIZES, max_holdout=REPORT_BUDGET_HOLDOUT)
    except ValueError as exc:
        return {"skipped": str(exc)}
    if result["curves"][method]["points"][-1]["n_fits"] == 0:
        return {"skipped": f"{method} cannot be fitted on the {result['pool_n']} labeled rows of the pool"}
    return label_budget_chart({**result, **result["curves"][method]}, path, highlight=method,
                              title=figure_title(data.spec.name, f"label budget ({method}, the deployed recipe)",
                                                 champion, data.night))
