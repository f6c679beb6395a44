"""The champion calibrator of a task_version, read only through `calibration_store.store`.

A scoring run looks up the champion's version once (`champion_version`) and loads
it once per process (hash- and task_version-checked). Analysts load it with
`load_champion` (read-only, waits politely while the nightly writer holds the file).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.document import load_document
from calscore.calibration_store.store import champion, load_version
from calscore.jobs.decisions import AppliedCalibrator, decide
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader


def champion_version(spec: TaskSpec) -> str | None:
    """The version id of this task_version's champion, or None (no warehouse or no champion yet)."""
    if not spec.warehouse.path.exists():
        return None
    with reader(spec.warehouse.path) as con:
        current = champion(con, spec.task_version)
    return current["version"] if current else None


@lru_cache(maxsize=8)
def _load(warehouse: str, task_version: str, version: str) -> BaseCalibrator:
    with reader(Path(warehouse)) as con:
        return load_version(con, version, task_version)


def applied_calibrator(spec: TaskSpec, version: str | None) -> AppliedCalibrator | None:
    if version is None:
        return None
    return AppliedCalibrator(version, _load(str(spec.warehouse.path), spec.task_version, version))


def load_champion(warehouse_path: str | Path, task_version: str) -> tuple[BaseCalibrator, dict[str, Any]] | None:
    """(calibrator, document) of the task_version's champion, read from the warehouse file read-only; None if none.

    Example:
        cal, doc = load_champion("var/demo/calscore.duckdb", spec.task_version)
        scored = apply_to_table(cal, con.sql("SELECT * FROM predictions").to_arrow_table())
    """
    with reader(Path(warehouse_path)) as con:
        doc = champion(con, task_version)
    return None if doc is None else (load_document(doc, task_version), doc)


def explain_calibrated(spec: TaskSpec, label_logprobs: list[float], coverage: float) -> dict | None:
    """The champion's view of one row for `calscore explain`: calibrated label, confidence, bucket."""
    applied = applied_calibrator(spec, champion_version(spec))
    if applied is None:
        return None
    decided = decide(spec, np.array([label_logprobs]), np.array([coverage]), applied)
    reason = decided.reason[0]
    return {"label": decided.label[0], "confidence": float(decided.confidence[0]),
            "bucket": decided.bucket[0] + (f" ({reason})" if reason else ""), "calibrator": applied.version}
