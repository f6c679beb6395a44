"""Threshold analysis: for each confidence threshold, how many rows it would automate and how
accurate they are, with a one-sided 95% Clopper-Pearson lower bound.

Volume counts every prediction at or above the threshold (off-format rows never
count: they go to manual whatever their confidence). Accuracy is estimated only
from audit-sample labels, weighted by 1 / inclusion probability, so it speaks for
all rows above the threshold rather than for the rows people chose to review;
the bound uses the effective sample size (see `intervals`).
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from calscore.jobs.reports.intervals import clopper_pearson_lower, weighted_proportion
from calscore.jobs.reports.plotting import CALIBRATED_COLOR, NEUTRAL_COLOR, RAW_COLOR, save
from calscore.jobs.spec import TaskSpec

THRESHOLDS = tuple(round(0.50 + 0.01 * i, 2) for i in range(50))  # 0.50, 0.51, ..., 0.99


def threshold_table(
    confidence: Any,
    automatable: Any,
    audit: Any,
    correct: Any,
    weights: Any = None,
    thresholds: tuple[float, ...] = THRESHOLDS,
    level: float = 0.95,
    volume: tuple[Sequence[int], int] | None = None,
) -> list[dict]:
    """One row per threshold t: rows with confidence >= t, their share of all rows, the audit labels among
    them, their weighted accuracy, effective n and the one-sided `level` lower bound on the accuracy.

    `volume` (rows at or above each threshold, all rows) counts every row when the arrays hold only the
    labeled ones (`RowCounts.at_or_above`, counted in DuckDB); by default the arrays are every row."""
    c = np.asarray(confidence, dtype=float)
    ok = np.asarray(automatable, dtype=bool) & ~np.isnan(c)
    audit = np.asarray(audit, dtype=bool)
    correct = np.asarray(correct, dtype=bool)
    w = np.ones(c.shape[0]) if weights is None else np.nan_to_num(np.asarray(weights, dtype=float))
    at_or_above, total = volume or ([int((ok & (c >= t)).sum()) for t in thresholds], c.shape[0])
    out = []
    for t, rows in zip(thresholds, at_or_above):
        sel = ok & (c >= t) & audit
        p, n_eff, k_eff = weighted_proportion(correct[sel], w[sel])
        out.append(
            {
                "threshold": float(t),
                "rows": rows,
                "share": rows / total if total else 0.0,
                "audit_labels": int(sel.sum()),
                "accuracy": p,
                "n_eff": n_eff,
                "lower_bound": clopper_pearson_lower(k_eff, n_eff, level),
            }
        )
    return out


def choose_threshold(table: list[dict], target: float) -> dict | None:
    """The lowest threshold whose lower bound reaches `target` (None when none does)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target accuracy must be between 0 and 1, got {target!r}")
    for row in table:
        if row["lower_bound"] is not None and row["lower_bound"] >= target:
            return row
    return None


def threshold_chart(table: list[dict], path: Path, target: float | None = None, title: str | None = None) -> dict:
    """Accuracy and its lower bound (left axis) and the share of rows automated (right axis) per threshold."""
    t = [r["threshold"] for r in table]
    acc = [np.nan if r["accuracy"] is None else r["accuracy"] for r in table]
    low = [np.nan if r["lower_bound"] is None else r["lower_bound"] for r in table]
    share = [r["share"] for r in table]
    fig = Figure(figsize=(8, 4.2))
    ax = fig.subplots()
    ax.plot(t, acc, color=CALIBRATED_COLOR, marker=".", label="estimated accuracy (audit labels)")
    ax.plot(t, low, color=CALIBRATED_COLOR, linestyle="--", label="95% lower bound (Clopper-Pearson)")
    chosen = None
    if target is not None:
        ax.axhline(target, color=RAW_COLOR, linewidth=1, linestyle=":", label=f"target {target:.2f}")
        chosen = choose_threshold(table, target)
        if chosen is not None:
            ax.axvline(chosen["threshold"], color=RAW_COLOR, linewidth=1)
            ax.annotate(f"{chosen['threshold']:.2f}: {chosen['rows']} rows ({100 * chosen['share']:.0f}%)",
                        (chosen["threshold"], 0.05), textcoords="offset points", xytext=(4, 0), fontsize=8)
    ax.set(xlabel="confidence threshold (rows at or above)", ylabel="accuracy", ylim=(0, 1.02), xlim=(0.5, 0.99))
    share_ax = ax.twinx()
    share_ax.fill_between(t, share, color=NEUTRAL_COLOR, alpha=0.15, step="mid")
    share_ax.set(ylabel="share of rows automated", ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or "Threshold analysis", fontsize=11)
    return {"path": save(fig, path), "target": target, "chosen": chosen, "thresholds": table}


def describe_choice(table: list[dict], target: float, total_rows: int) -> str:
    """One sentence: the chosen threshold and the volume it automates, or why there is none."""
    chosen = choose_threshold(table, target)
    if chosen is None:
        best = max((r for r in table if r["lower_bound"] is not None), key=lambda r: r["lower_bound"], default=None)
        if best is None:
            return f"no threshold can be chosen for {target:.0%}: there are no audit labels above 0.50"
        return (
            f"no threshold in 0.50-0.99 has a 95% lower bound of at least {target:.0%}; the best is "
            f"{best['threshold']:.2f} (lower bound {best['lower_bound']:.1%} "
            f"from {best['audit_labels']} audit labels). "
            "Label more rows (an audit sample) or lower the target."
        )
    return (
        f"lowest threshold whose 95% lower bound reaches {target:.0%}: {chosen['threshold']:.2f}; "
        f"it automates {chosen['rows']} of {total_rows} rows ({chosen['share']:.1%}) with estimated accuracy "
        f"{chosen['accuracy']:.1%} (lower bound {chosen['lower_bound']:.1%}, {chosen['audit_labels']} audit labels, "
        f"effective n {chosen['n_eff']:.0f})"
    )


def format_table(table: list[dict], every: float = 0.05, chosen: dict | None = None) -> str:
    """The table as fixed-width text, at steps of `every` plus the chosen threshold."""
    lines = [f"{'threshold':>9}  {'rows':>7}  {'share':>6}  {'audit n':>7}  {'n_eff':>6}  {'accuracy':>8}  "
             f"{'lower 95%':>9}"]
    for row in table:
        step = round(row["threshold"] / every, 6)
        if step != round(step) and row is not chosen:
            continue
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        low = "-" if row["lower_bound"] is None else f"{row['lower_bound']:.3f}"
        mark = "  <- chosen" if row is chosen else ""
        lines.append(
            f"{row['threshold']:>9.2f}  {row['rows']:>7}  {row['share']:>6.1%}  {row['audit_labels']:>7}  "
            f"{row['n_eff']:>6.1f}  {acc:>8}  {low:>9}{mark}"
        )
    return "\n".join(lines)


def thresholds_text(spec: TaskSpec, target: float = 0.90, night: date | str | None = None) -> str:
    """What `calscore thresholds --task T --target 0.90` prints: the choice, then the table.

    Volumes are counted in DuckDB; only the labeled rows are read, for the accuracies."""
    from calscore.jobs.reports.queries import load_counts, load_rows, report_connection

    if not 0.0 < target < 1.0:
        raise ValueError(f"--target must be between 0 and 1 (an accuracy such as 0.90), got {target}")
    with report_connection(spec.warehouse.path) as con:
        counts = load_counts(con, spec.task_version, night)
        labeled = load_rows(con, spec.task_version, night, labeled_only=True)
    scope = f"night {night}" if night else "all nights"
    head = f"task {spec.name} (task_version {spec.task_version}), {scope}: {counts.total} predictions, " \
           f"{int(labeled.is_audit_label.sum())} with audit labels"
    if counts.total == 0:
        return head + "\nnothing to analyse yet: no predictions for this task version"
    table = threshold_table(labeled.decision_confidence, ~labeled.off_format, labeled.is_audit_label,
                            labeled.is_correct, labeled.label_weight, volume=counts.at_or_above(THRESHOLDS))
    chosen = choose_threshold(table, target)
    return "\n".join([head, describe_choice(table, target, counts.total), "", format_table(table, chosen=chosen)])
