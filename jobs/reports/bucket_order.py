"""Coverage as evidence: does a lower bucket beat one above it, and which coverage floor do the labels support?

Both read only the certifying labels (audit or random sample, `is_audit_label`), each accuracy weighted by
1 / inclusion probability with a 95% Wilson interval on Kish's effective n, as the bucket table's (see
`intervals`).

Bucket order (`order_warnings`): the groups are the buckets, highest first, as the rows were decided, then the
off-format rows (which sit in the last bucket) compared with every bucket above the last. A lower group is
"more accurate" than an upper one when its 95% Wilson lower bound is above the upper group's point estimate:
a one-sided comparison against the upper figure taken as exact, so a lower bucket with a handful of lucky
labels does not warn.

Coverage floor (`suggest_floor`): for each candidate floor f (0.00 to 0.90 by 0.05), the rows that f would send
to manual as off-format (coverage < f) are compared with the rows it would leave in the last bucket before
manual (coverage >= f and decision confidence in that bucket's range), by the same test. Candidates are scanned
from the lowest up and the first at which the off-format rows are more accurate ends the scan; the suggestion is
the floor before it (a floor below which no label falls passes: it sends no labeled row to manual). Taking the
lowest floor that passes would always pick the first candidate with a label below it; the highest before the
first failure is the highest floor that never sends to manual rows shown to be better than the last bucket. It
only suggests: the task file is never changed. The line states what the suggestion costs, counted over all the
task version's predictions in DuckDB (not only the labeled ones): how many rows it would send to the last bucket
as off-format, next to how many the task file's floor does. It cites only labels that exist: with no certifying
label it says so, and a scan ended because the bucket compared with has no label left is not reported as a
finding.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from calscore.jobs.common.intervals import GROUP_LEVEL, group_accuracy, group_size, more_accurate
from calscore.jobs.decisions import assign_buckets
from calscore.jobs.spec import Bucket, TaskSpec
from calscore.jobs.warehouse.statements import statement

LEVEL = GROUP_LEVEL
CANDIDATE_FLOORS = tuple(round(0.05 * i, 2) for i in range(19))  # 0.00, 0.05, ..., 0.90
OFF_FORMAT_GROUP = "off-format rows"


@dataclass(frozen=True)
class CertifyingLabels:
    """The certifying labeled rows of a task version, row by row (`load_certifying_labels`)."""

    bucket: np.ndarray
    off_format: np.ndarray
    coverage: np.ndarray
    decision_confidence: np.ndarray
    is_correct: np.ndarray
    label_weight: np.ndarray


def load_certifying_labels(con, task_version: str, night: date | None = None) -> CertifyingLabels:
    """The task version's certifying labels (one night, or all) from the warehouse."""
    table = con.sql(statement("bucket_order_labels"),
                    params={"task_version": task_version, "night": night}).to_arrow_table()
    return CertifyingLabels(
        bucket=np.asarray(table.column("bucket").to_pylist(), dtype=object),
        off_format=np.asarray(table.column("off_format").to_pylist(), dtype=bool),
        coverage=np.asarray(table.column("coverage").to_pylist(), dtype=float),
        decision_confidence=np.asarray(
            [np.nan if v is None else v for v in table.column("decision_confidence").to_pylist()], dtype=float),
        is_correct=np.asarray(table.column("is_correct").to_pylist(), dtype=bool),
        label_weight=np.asarray(table.column("label_weight").to_pylist(), dtype=float),
    )


@dataclass(frozen=True)
class FloorCost:
    """How many of the task version's predictions (one night, or all) a floor sends to the last bucket as
    off-format (coverage below it): the task file's floor and the suggested one (None without a suggestion)."""

    rows: int
    current: int
    suggested: int | None


def floor_cost(con, task_version: str, current: float, suggested: float | None, night: date | None) -> FloorCost:
    """Count, in DuckDB, the predictions under each floor (coverage is the raw score's, fixed whatever decided)."""
    rows, below_current, below_suggested = con.execute(
        "select count(*), count(*) filter (where coverage < $current), count(*) filter (where coverage < $suggested)"
        " from predictions where task_version = $task_version and ($night::date is null or night = $night::date)",
        {"task_version": task_version, "current": current, "suggested": suggested, "night": night}).fetchone()
    return FloorCost(rows, below_current, None if suggested is None else below_suggested)


def _figure(g: dict, with_low: bool = False) -> str:
    low = f", {LEVEL:.0%} Wilson lower bound {g['low']:.3f}" if with_low else ""
    return f"accuracy {g['accuracy']:.3f} ({group_size(g)}{low})"


def order_warnings(
    buckets: Sequence[Bucket],
    bucket: Any,
    off_format: Any,
    correct: Any,
    weights: Any = None,
    level: float = LEVEL,
) -> list[dict]:
    """One warning per (upper, lower) pair where the lower group is `more_accurate` than the upper one.

    The arrays hold the certifying labeled rows only. Groups, highest first: each of `buckets` (every row it
    holds), then the off-format rows (compared with the buckets above the last, which holds them; when the last
    holds nothing else, only they are compared)."""
    bucket = np.asarray(bucket, dtype=object)
    off_format = np.asarray(off_format, dtype=bool)
    correct = np.asarray(correct, dtype=bool)
    w = np.ones(bucket.shape[0]) if weights is None else np.nan_to_num(np.asarray(weights, dtype=float), nan=1.0)
    groups = [(b.name, group_accuracy(correct[bucket == b.name], w[bucket == b.name], level)) for b in buckets]
    off = (f"{OFF_FORMAT_GROUP} (in {buckets[-1].name})", group_accuracy(correct[off_format], w[off_format], level))
    if off_format.any() and np.array_equal(bucket == buckets[-1].name, off_format):
        groups_below = groups[:-1]  # the last bucket holds only off-format rows: one line, naming them, is enough
    else:
        groups_below = groups
    out = []
    for i, (upper_name, upper) in enumerate(groups):
        lowers = groups_below[i + 1:] + ([off] if i < len(groups) - 1 else [])
        for lower_name, lower in lowers:
            if more_accurate(lower, upper):
                out.append({"upper": upper_name, "lower": lower_name, "upper_figures": upper, "lower_figures": lower,
                            "text": warning_line(upper_name, upper, lower_name, lower)})
    return out


def warning_line(upper_name: str, upper: dict, lower_name: str, lower: dict) -> str:
    """The one-line warning for a lower group more accurate than an upper one."""
    verb = "are" if lower_name.startswith(OFF_FORMAT_GROUP) else "is"
    return (f"warning: bucket order: {lower_name} {verb} more accurate than {upper_name} above "
            f"{'them' if verb == 'are' else 'it'} on the audit labels: {lower_name} {_figure(lower, True)} vs "
            f"{upper_name} {_figure(upper)}")


def suggest_floor(
    buckets: Sequence[Bucket],
    coverage: Any,
    decision_confidence: Any,
    correct: Any,
    weights: Any = None,
    candidates: Sequence[float] = CANDIDATE_FLOORS,
    level: float = LEVEL,
) -> dict:
    """The coverage floor the labels support (module docstring), from the certifying labeled rows.

    Returns `floor` (the suggestion; None when the labels cannot give one), `stopped` (the first candidate at
    which the off-format rows were more accurate, or `bucket` had no label left, with both groups' figures; None
    when none was), `bucket` (the last bucket before manual, the comparison's), `manual` (the last bucket, where
    off-format rows go), `any_below` (whether any label has coverage below the highest candidate) and `reason`
    when there is no suggestion."""
    coverage = np.asarray(coverage, dtype=float)
    confidence = np.asarray(decision_confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    w = np.ones(coverage.shape[0]) if weights is None else np.nan_to_num(np.asarray(weights, dtype=float), nan=1.0)
    ordered = sorted(candidates)
    out: dict = {"floor": None, "stopped": None, "bucket": None, "manual": buckets[-1].name, "any_below": False,
                 "reason": None}
    if len(buckets) < 2:
        out["reason"] = "the task has one bucket: no bucket before manual to compare with"
        return out
    last = buckets[-2].name
    out["bucket"] = last
    out["any_below"] = bool((coverage < ordered[-1]).any())
    if coverage.shape[0] == 0:
        out["reason"] = "there are no audit labels (audit or random sample) to suggest a floor from"
        return out
    if not out["any_below"]:
        out["reason"] = f"no audit label has coverage below {ordered[-1]:.2f}: the labels cannot choose a floor"
        return out
    for f in ordered:
        below = coverage < f
        if below.any():
            names, _ = assign_buckets(confidence, coverage, buckets, f)
            kept = ~below & (names == last)
            off = group_accuracy(correct[below], w[below], level)
            kept_fig = group_accuracy(correct[kept], w[kept], level)
            if kept_fig["accuracy"] is None or more_accurate(off, kept_fig):
                out["stopped"] = {"floor": f, "off_format": off, "kept": kept_fig}
                break
        out["floor"] = f
    if out["floor"] is None:
        out["reason"] = (f"already at {ordered[0]:.2f} no audit label is left in {last} to compare with"
                         if out["stopped"]["kept"]["accuracy"] is None else
                         f"already at {ordered[0]:.2f} the rows below the floor are more accurate than {last}")
    return out


def floor_line(s: dict, current: float, cost: FloorCost) -> str:
    """The suggestion in one line, with the figures that ended the scan, then what the floors cost."""
    head = f"coverage floor from labels (task file: {current:.2f}; a suggestion, the task file is not changed): "
    return head + _suggestion(s) + "; " + _cost(s, current, cost)


def _suggestion(s: dict) -> str:
    if s["floor"] is None:
        return f"none: {s['reason']}"
    rule = (f"the rows below the floor are more accurate than those left in {s['bucket']} (their {LEVEL:.0%} "
            "Wilson lower bound above its accuracy; audit labels, weighted)")
    st = s["stopped"]
    if st is None:
        return f"{s['floor']:.2f}: at no candidate from 0.00 up to it {rule.replace(' are ', ' were ', 1)}"
    below = f"at {st['floor']:.2f}: coverage below it {_figure(st['off_format'], True)}"
    if st["kept"]["accuracy"] is None:  # the scan ran out of labels to compare with: no finding to cite
        return (f"{s['floor']:.2f}, the highest candidate (0.00 up by 0.05) before the first that leaves no audit "
                f"label in {s['bucket']} to compare with; {below}")
    return (f"{s['floor']:.2f}, the highest candidate (0.00 up by 0.05) before the first at which {rule}; "
            f"{below} vs {s['bucket']} {_figure(st['kept'])}")


def _cost(s: dict, current: float, cost: FloorCost) -> str:
    now = f"the task file's {current:.2f} sends {cost.current:,}"
    of = f"of the {cost.rows:,} predictions to {s['manual']} as off-format"
    return f"{now} {of}" if s["floor"] is None else f"{s['floor']:.2f} would send {cost.suggested:,} {of}; {now}"


def coverage_floor_line(con, spec: TaskSpec, labels: CertifyingLabels, night: date | None) -> str:
    """The floor line `calscore thresholds` prints: the suggestion from the certifying labels and its cost."""
    s = suggest_floor(spec.buckets, labels.coverage, labels.decision_confidence, labels.is_correct,
                      labels.label_weight)
    return floor_line(s, spec.coverage_floor,
                      floor_cost(con, spec.task_version, spec.coverage_floor, s["floor"], night))
