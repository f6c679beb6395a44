"""Reliability snapshots: a calibrator's figures, raw and calibrated, overall and per segment, on labels it was
judged on without seeing them (`evidence_base.load_judged_labels`), with what they rest on."""
from __future__ import annotations

import json
import uuid

from calscore.calibration_store import metrics
from calscore.jobs.calibrators.evidence_base import JudgedLabels
from calscore.jobs.common.clock import utcnow
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.statements import statement

# snapshot fields stored as they are (a reliability report carries more than the table keeps)
_FIELDS = ("snapshot_id", "scores", "segment", "n", "accuracy", "ece", "ece_equal_mass", "ece_ci_low",
           "ece_ci_high", "mce", "smece", "smece_ci_low", "smece_ci_high", "debiased_ece", "nll", "brier",
           "n_held_out", "n_out_of_fold", "label_designs")


def snapshot_rows(version: str | None, judged: JudgedLabels) -> list[dict]:
    """Raw and calibrated reliability overall and per segment (raw only without a calibrator)."""
    snapshot_id = f"snap-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    groups = [("all", judged)]
    if set(judged.segment.tolist()) - {"(none)"}:
        groups += [(str(s), judged.take(judged.segment == s)) for s in sorted(set(judged.segment.tolist()))]
    out = []
    for segment, rows in groups:
        basis = rows.counts("basis")
        for kind, probs in (("raw", rows.raw), ("calibrated", rows.calibrated)):
            if probs is None or not len(rows):
                continue
            # intervals for the whole only: per-segment intervals are read nowhere, and each costs seconds
            report = metrics.reliability_report(probs, rows.y, weights=rows.weight, intervals=segment == "all")
            out.append({"snapshot_id": snapshot_id, "scores": kind, "segment": segment, "version": version,
                        "n_held_out": basis.get("held_out", 0), "n_out_of_fold": basis.get("out_of_fold", 0),
                        "label_designs": json.dumps(rows.counts("design")), **report})
    return out


def write_snapshots(con, spec: TaskSpec, run_id: str, snaps: list[dict], diagram_path: str | None) -> None:
    now = utcnow()
    for s in snaps:
        con.execute(
            statement("reliability_snapshots_insert"),
            {**{k: s[k] for k in _FIELDS}, "task_name": spec.name, "task_version": spec.task_version,
             "calibrator_version": s["version"], "run_id": run_id, "bins": json.dumps(s["bins"]),
             "diagram_path": diagram_path if s["segment"] == "all" else None, "created_at": now},
        )
