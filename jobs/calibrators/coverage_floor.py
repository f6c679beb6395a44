"""The coverage floor a champion applies, decided from labels when `recalibrate` decides the champion.

    decision = decide_floor(spec.buckets, spec.coverage_floor, coverage, oof_probs, y, weights)
    floor_sentence(decision, spec.coverage_floor)   # the one line status, thresholds and recalibrate print

The task file's `coverage_floor` is the floor a task starts with and the most it can apply. Rows whose label
tokens got less of the probability than it ("off-format") are often right, so sending them all to the last bucket
can waste people's time; the floor applies only where the labels show that those rows are less accurate than the
last bucket before it, which is where the weakest rows the floor does not catch end up:

- labels: the audit and random-sample labels the decision used (the evidence labels, outside the certification
  slice), each weighted by 1 / inclusion probability, each decided by the champion recipe's out-of-fold prediction
  (a map that never saw the row; `calibration_store.evidence`);
- groups: the rows with coverage below the task file's floor, and the rows at or above it whose out-of-fold
  confidence puts them in the last bucket before the last (`manual`);
- rule: the floor applies when the off-format group's 95% Wilson upper bound (on Kish's effective n) is below
  the compared bucket's weighted accuracy (`intervals.less_accurate`: the bucket-order warning's test,
  `more_accurate`, mirrored); otherwise the floor in effect is 0 and off-format rows are bucketed by their
  confidence like every row. With no off-format label, or none in the compared bucket, the labels cannot show
  it, so it does not apply: the reason says which.

The decision (a JSON object: the floor in effect, the task file's floor it was made for, both groups' figures and
the reason) is stored in the champion's document (schema 2), so scoring, re-application and `explain` apply the
floor of the champion they apply (`decisions.applied_floor`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from calscore.calibration_store.document import FLOOR_KEY
from calscore.calibration_store.store import champion
from calscore.jobs.common.intervals import GROUP_LEVEL as LEVEL
from calscore.jobs.common.intervals import group_accuracy, group_size, less_accurate
from calscore.jobs.decisions import applied_floor, assign_buckets
from calscore.jobs.spec import Bucket, TaskSpec

LABELS = "audit and random-sample labels, weighted, each by the champion recipe's out-of-fold prediction"


def decide_floor(
    buckets: Sequence[Bucket],
    task_floor: float,
    coverage: Any,
    probs: Any,
    y: Any,
    weights: Any = None,
    recipe: str | None = None,
    level: float = LEVEL,
) -> dict[str, Any]:
    """The floor decision (module docstring) from the certifying labeled rows: their coverage, (n, K) out-of-fold
    probabilities, true label indices and weights. JSON-safe: it is stored in the champion's document."""
    coverage = np.asarray(coverage, dtype=float)
    probs = np.asarray(probs, dtype=float)
    best = np.argmax(probs, axis=1) if coverage.shape[0] else np.zeros(0, dtype=int)
    correct = best == np.asarray(y, dtype=int)
    w = np.ones(coverage.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    out: dict[str, Any] = {"task_floor": float(task_floor), "in_effect": 0.0, "shown": False, "recipe": recipe,
                           "compared_bucket": buckets[-2].name if len(buckets) > 1 else None,
                           "manual": buckets[-1].name, "off_format": None, "compared": None, "reason": ""}
    if task_floor <= 0.0:
        out["reason"] = "the task file sets no coverage floor"
        return out
    if len(buckets) < 2:
        out["reason"] = "the task has one bucket: no bucket before it to compare off-format rows with"
        return out
    off = coverage < task_floor
    # the bucket each row's confidence alone reaches (floor 0): the compared rows are those the floor leaves there
    by_confidence, _ = assign_buckets(probs[np.arange(len(best)), best], coverage, buckets, 0.0)
    compared = ~off & (by_confidence == out["compared_bucket"])
    out["off_format"] = _figures(group_accuracy(correct[off], w[off], level))
    out["compared"] = _figures(group_accuracy(correct[compared], w[compared], level))
    out["shown"] = less_accurate(out["off_format"], out["compared"])
    out["in_effect"] = float(task_floor) if out["shown"] else 0.0
    out["reason"] = _reason(out, level)
    return out


def _figures(g: dict) -> dict[str, Any]:
    """A group's figures as stored (JSON: no NaN; a group without labels has accuracy and bounds None)."""
    return {"n": g["n"], "accuracy": g["accuracy"], "n_eff": float(g["n_eff"]), "low": g["low"], "high": g["high"]}


def _reason(d: dict, level: float) -> str:
    bucket, floor = d["compared_bucket"], d["task_floor"]
    if not d["off_format"]["n"]:
        return (f"no audit label has coverage below {floor:.2f}: the labels cannot show that off-format rows are "
                f"less accurate than {bucket}")
    if not d["compared"]["n"]:
        return (f"no audit label at or above coverage {floor:.2f} lands in {bucket}: the labels cannot show that "
                f"off-format rows are less accurate than it")
    verb = "below" if d["shown"] else "not below"
    return (f"off-format rows: {group_text(d['off_format'])}, whose {level:.0%} upper bound is {verb} "
            f"{bucket}'s {group_text(d['compared'])}")


def group_text(g: Mapping[str, Any]) -> str:
    """`accuracy 0.700 [0.553, 0.814] (n=40, effective n 31.2)`: a group's figures with its Wilson interval."""
    return f"accuracy {g['accuracy']:.3f} [{g['low']:.3f}, {g['high']:.3f}] ({group_size(g)})"


def floor_sentence(decision: Mapping[str, Any] | None, task_floor: float, has_champion: bool = True) -> str:
    """The one line `status`, `thresholds` and a recalibration print: the floor in effect (what
    `decisions.applied_floor` gives scoring), whether labels showed it, and the figures that did."""
    head = f"coverage floor in effect: {applied_floor(task_floor, decision):.2f}"
    if decision is None:
        why = ("the task has no champion yet" if not has_champion else
               "the champion carries no floor decision (promoted by hand or before floors were decided); the next "
               "recalibration decides it")
        return f"{head}, the task file's, not tested by labels: {why}"
    if decision.get("task_floor") != task_floor:
        return (f"{head}, the task file's, not tested by labels: the champion's floor was decided for the task "
                f"file's {decision['task_floor']:.2f} (recalibrate to decide it for {task_floor:.2f})")
    if decision["shown"]:
        how = ("the task file's; the labels show off-format rows (coverage below it) less accurate: "
               f"{decision['reason']}")
    elif decision["off_format"] is None:  # no floor to test (none set, or one bucket)
        how = decision["reason"] if task_floor <= 0 else \
            f"the task file's {task_floor:.2f} is not applied: {decision['reason']}"
    else:
        how = (f"lifted from the task file's {task_floor:.2f}, so off-format rows are bucketed by their confidence: "
               f"the labels do not show them less accurate: {decision['reason']}")
    on = f"; {LABELS} ({decision['recipe']})" if decision["off_format"] is not None and decision["off_format"]["n"] \
        and decision["compared"]["n"] else ""
    return f"{head}, {how}{on}"


def champion_floor_line(con, spec: TaskSpec) -> str:
    """`floor_sentence` of the floor the task's champion applies, read from its document (what scoring reads)."""
    doc = champion(con, spec.task_version)
    return floor_sentence(None if doc is None else doc.get(FLOOR_KEY), spec.coverage_floor,
                          has_champion=doc is not None)
