"""Threshold analysis: for each confidence threshold, how many rows it would automate and how
accurate they are, with a one-sided 95% Clopper-Pearson lower bound, and the threshold chosen by
fixed-sequence testing.

Volume counts every prediction at or above the threshold (off-format rows never
count: they go to manual whatever their confidence). Accuracy is estimated only
from labels of a sampling design (an audit sample, or a declared simple random
sample: `labels import --design`), weighted by 1 / inclusion probability, so it speaks for
all rows above the threshold rather than for the rows people chose to review
(convenience labels never count);
the bound uses the effective sample size (see `intervals`).

The choice: keeping the lowest of ~50 thresholds whose bound reaches the target
would test 50 hypotheses and keep the luckiest, so its 95% would not hold. Instead
the thresholds are tested one at a time in an order fixed in advance, from the
highest down, each at level alpha = 1 - level, and the first failure ends the
scan; the chosen threshold is the last one that passed. Fixed-sequence testing
controls the family-wise error at alpha with no multiplicity correction (Maurer,
Hothorn & Lehmacher 1995; Angelopoulos et al. 2021, "Learn then Test", section 4).
The scan starts at the highest threshold that could pass if every audit label
above it were right (its effective n alone decides, never the labels' values), so
a top threshold with too few labels does not end the scan before it begins.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from calscore.jobs.common.intervals import clopper_pearson_lower, weighted_proportion
from calscore.jobs.reports.plotting import (
    CALIBRATED_COLOR,
    NEUTRAL_COLOR,
    RAW_COLOR,
    legend_outside,
    save,
)
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
                "level": level,
            }
        )
    return out


def could_pass(row: dict, target: float) -> bool:
    """Whether the row's bound could reach `target` were every audit label right: alpha^(1 / n_eff) >= target
    (the Clopper-Pearson bound at k = n). Reads the effective n only, never whether a label is right."""
    n_eff = row["n_eff"]
    return n_eff > 0 and clopper_pearson_lower(n_eff, n_eff, row.get("level", 0.95)) >= target


def threshold_sequence(table: list[dict], target: float) -> dict:
    """Fixed-sequence test of "accuracy at or above t >= target", t from the highest down (module docstring).

    Returns `start` (the first threshold tested: the highest that `could_pass`), `chosen` (the lowest threshold
    of the unbroken run of passes from `start`, None when `start` fails or nothing could pass) and `stopped`
    (the first threshold that failed, which ends the scan; None when every one down to the lowest passed).
    A threshold fails when its lower bound is below the target or it has no audit labels."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target accuracy must be between 0 and 1, got {target!r}")
    ordered = sorted(table, key=lambda r: r["threshold"], reverse=True)
    first = next((i for i, row in enumerate(ordered) if could_pass(row, target)), None)
    out: dict = {"target": target, "start": None, "chosen": None, "stopped": None}
    if first is None:
        return out
    out["start"] = ordered[first]
    for row in ordered[first:]:
        if row["lower_bound"] is None or row["lower_bound"] < target:
            out["stopped"] = row
            break
        out["chosen"] = row
    return out


def choose_threshold(table: list[dict], target: float) -> dict | None:
    """The threshold fixed-sequence testing chooses for `target` (None when the first one tested fails or
    no threshold has enough audit labels to reach it): see `threshold_sequence`."""
    return threshold_sequence(table, target)["chosen"]


def percent(value: float) -> str:
    """A target as a percentage: 90% for 0.90, 99.9% for 0.999."""
    return f"{value:.0%}" if abs(round(100 * value) - 100 * value) < 1e-9 else f"{value:.1%}"


def certification_sentence(spec: TaskSpec) -> str:
    """Which labels certify, in one sentence: the guarantee needs labels the deployed calibrator never saw."""
    return (f"Certified on labels the deciding calibrator never saw: the certification slice (a fixed "
            f"{spec.calibration.certify_fraction:.0%} of the audit/random-sample labels, kept out of every fit by "
            "[calibration] certify_fraction) and sample labels newer than its fit; out-of-fold predictions "
            "describe the recipe, not the deployed map, so they inform the report but never certify.")


def guarantee_sentence(target: float, level: float = 0.95) -> str:
    """The one sentence stating what the choice guarantees."""
    return (
        f"Guarantee: the chance that the chosen threshold's rows are less than {percent(target)} accurate is at "
        f"most {percent(1 - level)} for the whole scan, because thresholds are tested in a fixed order from the "
        "highest down and the first failure ends it (fixed-sequence testing, as in Learn then Test)."
    )


def threshold_chart(table: list[dict], path: Path, target: float | None = None, title: str | None = None) -> dict:
    """Accuracy and its lower bound (left axis) and the share of rows automated (right axis) per threshold;
    with a target, the chosen threshold (solid line) and the first failure that ended the scan (x)."""
    t = [r["threshold"] for r in table]
    acc = [np.nan if r["accuracy"] is None else r["accuracy"] for r in table]
    low = [np.nan if r["lower_bound"] is None else r["lower_bound"] for r in table]
    share = [r["share"] for r in table]
    level = table[0].get("level", 0.95) if table else 0.95
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, acc, color=CALIBRATED_COLOR, marker=".", label="estimated accuracy (audit labels)")
    ax.plot(t, low, color=CALIBRATED_COLOR, linestyle="--", label=f"{level:.0%} lower bound (Clopper-Pearson)")
    sequence: dict = {"start": None, "chosen": None, "stopped": None}
    if target is not None:
        ax.axhline(target, color=RAW_COLOR, linewidth=1, linestyle=":", label=f"target {target:.2f}")
        sequence = threshold_sequence(table, target)
        chosen, stopped = sequence["chosen"], sequence["stopped"]
        if chosen is not None:
            ax.axvline(chosen["threshold"], color=RAW_COLOR, linewidth=1)
            ax.annotate(f"{chosen['threshold']:.2f}: {chosen['rows']} rows ({100 * chosen['share']:.0f}%)",
                        (chosen["threshold"], 0.05), textcoords="offset points", xytext=(4, 0), fontsize=8)
        if stopped is not None:
            ax.plot([stopped["threshold"]], [stopped["lower_bound"] or 0.0], linestyle="none", marker="x",
                    color=RAW_COLOR, markersize=8, label="first failure from the top: the scan stops")
    ax.set(xlabel="confidence threshold (rows at or above)", ylabel="accuracy", ylim=(0, 1.02), xlim=(0.5, 0.99))
    share_ax = ax.twinx()
    share_ax.fill_between(t, share, color=NEUTRAL_COLOR, alpha=0.15, step="mid")
    share_ax.set(ylabel="share of rows automated", ylim=(0, 1.02))
    legend_outside(fig, ax, ncols=2, fontsize=8)
    ax.set_title(title or "Threshold analysis (fixed-sequence test from the highest threshold down)", fontsize=11)
    return {"path": save(fig, path), "target": target, "chosen": sequence["chosen"], "start": sequence["start"],
            "stopped": sequence["stopped"], "thresholds": table}


def describe_choice(table: list[dict], target: float, total_rows: int) -> str:
    """The chosen threshold and the volume it automates, or why there is none; then the guarantee sentence."""
    sequence = threshold_sequence(table, target)
    start, chosen, stopped = sequence["start"], sequence["chosen"], sequence["stopped"]
    level = table[0].get("level", 0.95) if table else 0.95
    goal = f"a {percent(level)} lower bound of at least {percent(target)}"
    if start is None:
        most = max(table, key=lambda r: r["n_eff"], default=None)
        if most is None or most["audit_labels"] == 0:
            return f"no threshold can be chosen for {percent(target)}: there are no audit labels above 0.50"
        return (
            f"no threshold can be chosen for {percent(target)}: none has enough audit labels for {goal} even if "
            f"every label were right (the most: {most['audit_labels']} at {most['threshold']:.2f}, effective n "
            f"{most['n_eff']:.1f}). Label more rows (an audit sample) or lower the target."
        )
    if chosen is None:
        return (
            f"no threshold can be chosen for {percent(target)}: the first one tested, {start['threshold']:.2f} (the "
            f"highest with enough audit labels), has a lower bound of {start['lower_bound']:.1%} from "
            f"{start['audit_labels']} audit labels, and the first failure ends the scan. "
            "Label more rows (an audit sample) or lower the target."
        )
    until = ("down to 0.50" if stopped is None else
             f"until {stopped['threshold']:.2f} failed (lower bound {stopped['lower_bound'] or 0.0:.1%})")
    return (
        f"threshold for {percent(target)}: {chosen['threshold']:.2f}; tested from {start['threshold']:.2f} down, "
        f"each threshold had {goal} {until}. {chosen['threshold']:.2f} automates {chosen['rows']} of {total_rows} "
        f"rows ({chosen['share']:.1%}) with estimated accuracy {chosen['accuracy']:.1%} (lower bound "
        f"{chosen['lower_bound']:.1%}, {chosen['audit_labels']} audit labels, effective n {chosen['n_eff']:.0f}). "
        + guarantee_sentence(target, level)
    )


def format_table(table: list[dict], every: float = 0.05, chosen: dict | None = None,
                 start: dict | None = None, stopped: dict | None = None) -> str:
    """The table as fixed-width text, at steps of `every` plus the first threshold tested, the chosen one
    and the first failure."""
    level = table[0].get("level", 0.95) if table else 0.95
    header = (f"{'threshold':>9}  {'rows':>7}  {'share':>6}  {'audit n':>7}  {'n_eff':>6}  {'accuracy':>8}  "
              f"{'lower ' + format(level, '.0%'):>9}")
    lines = [header]
    for row in table:
        marks = [name for name, r in (("first tested", start), ("chosen", chosen), ("first failure", stopped))
                 if row is r]
        step = round(row["threshold"] / every, 6)
        if step != round(step) and not marks:
            continue
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        low = "-" if row["lower_bound"] is None else f"{row['lower_bound']:.3f}"
        mark = "  <- " + ", ".join(marks) if marks else ""
        lines.append(
            f"{row['threshold']:>9.2f}  {row['rows']:>7}  {row['share']:>6.1%}  {row['audit_labels']:>7}  "
            f"{row['n_eff']:>6.1f}  {acc:>8}  {low:>9}{mark}"
        )
    return "\n".join(lines)


def thresholds_text(spec: TaskSpec, target: float = 0.90, night: date | str | None = None) -> str:
    """What `calscore thresholds --task T --target 0.90` prints: the choice and its guarantee, then the table.

    Volumes are counted in DuckDB; only the labeled rows are read, for the accuracies."""
    from calscore.jobs.calibrators.coverage_floor import champion_floor_line
    from calscore.jobs.reports.bucket_order import coverage_floor_line, load_certifying_labels, order_warnings
    from calscore.jobs.reports.queries import load_counts, load_rows, parse_night, report_connection

    if not 0.0 < target < 1.0:
        raise ValueError(f"--target must be between 0 and 1 (an accuracy such as 0.90), got {target}")
    with report_connection(spec.warehouse.path) as con:
        counts = load_counts(con, spec.task_version, night)
        labeled = load_rows(con, spec.task_version, night, labeled_only=True)
        certifying = load_certifying_labels(con, spec.task_version, parse_night(night))
        floor = coverage_floor_line(con, spec, certifying, parse_night(night))  # counts its cost in DuckDB
        in_effect = champion_floor_line(con, spec)  # what scoring applies: the champion's floor decision
    scope = f"night {night}" if night else "all nights"
    # only labels of a sampling design that the deciding calibrator never saw certify (is_audit_label); the
    # others are counted here so the output says why they are left out
    convenience = int((labeled.label_design == "convenience").sum())
    fitted = int((~labeled.is_audit_label & (labeled.label_design != "convenience")).sum())
    head = f"task {spec.name} (task_version {spec.task_version}), {scope}: {counts.total} predictions, " \
           f"{int(labeled.is_audit_label.sum())} with certifying labels (audit or random sample, never fitted on)"
    if fitted:
        head += f", {fitted} with sample labels the calibrator was fitted on"
    if convenience:
        head += f", {convenience} with convenience labels"
    if counts.total == 0:
        return head + "\nnothing to analyse yet: no predictions for this task version"
    table = threshold_table(labeled.decision_confidence, ~labeled.off_format, labeled.is_audit_label,
                            labeled.is_correct, labeled.label_weight, volume=counts.at_or_above(THRESHOLDS))
    seq = threshold_sequence(table, target)
    lines = [head, describe_choice(table, target, counts.total), certification_sentence(spec)]
    if convenience:
        lines.append(
            f"{convenience} convenience label(s) are not used: chosen without a sampling design, they never certify "
            "a threshold (if they are a simple random sample of the scored rows, import them again with "
            "`calscore labels import --design random`)")
    c = certifying
    lines += [w["text"] for w in order_warnings(spec.buckets, c.bucket, c.off_format, c.is_correct, c.label_weight)]
    lines += [in_effect, floor]
    return "\n".join(lines + ["", format_table(table, chosen=seq["chosen"], start=seq["start"],
                                                stopped=seq["stopped"])])
