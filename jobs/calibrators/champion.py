"""The champion calibrator of a task_version, read only through `calibration_store.store`.

A scoring run reads the champion's document once (`champion_document`) and hands the
JSON to its scoring tasks, which rebuild it (`applied_from_document`: hash- and
task_version-checked, once per process): scoring never opens the warehouse. Analysts
load it with `load_champion` (read-only, waits politely while the nightly writer holds
the file).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.document import FLOOR_KEY, canonical_json, load_document
from calscore.calibration_store.store import champion
from calscore.jobs.calibrators.coverage_floor import floor_sentence
from calscore.jobs.decisions import AppliedCalibrator, decide
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader


def champion_document(spec: TaskSpec) -> dict[str, Any] | None:
    """The verified JSON document of this task_version's champion, or None (no warehouse or no champion yet)."""
    if not spec.warehouse.path.exists():
        return None
    with reader(spec.warehouse.path) as con:
        return champion(con, spec.task_version)


@lru_cache(maxsize=8)
def _from_json(document: str, task_version: str) -> BaseCalibrator:
    return load_document(json.loads(document), task_version)


def applied_from_document(document: str | None, task_version: str) -> AppliedCalibrator | None:
    """The calibrator a scoring task applies, rebuilt from the champion's JSON document (None: raw), with the
    coverage floor decision the document carries."""
    if document is None:
        return None
    doc = json.loads(document)
    return AppliedCalibrator(doc["version"], _from_json(document, task_version), doc.get(FLOOR_KEY))


def load_champion(warehouse_path: str | Path, task_version: str) -> tuple[BaseCalibrator, dict[str, Any]] | None:
    """(calibrator, document) of the task_version's champion, read from the warehouse file read-only; None if none.

    Example:
        cal, doc = load_champion("var/demo/calscore.duckdb", spec.task_version)
        scored = apply_to_table(cal, con.sql("SELECT * FROM predictions").to_arrow_table())
    """
    with reader(Path(warehouse_path)) as con:
        doc = champion(con, task_version)
    return None if doc is None else (load_document(doc, task_version), doc)


def explain_calibrated(spec: TaskSpec, label_logprobs: list[float], coverage: float,
                       agreement: list[float] | None = None) -> dict:
    """The nightly decision for one row, for `calscore explain`: with the champion, its calibrated label,
    confidence and bucket; without one, the bucket the raw confidence gets (confidence None). `agreement`
    (a `combined` task's smoothed agreement log-probabilities) is read by a combined champion. A row under the task
    file's coverage floor also gets `floor`: the floor in effect and why (it may have been lifted by the labels)."""
    doc = champion_document(spec)
    applied = applied_from_document(canonical_json(doc), spec.task_version) if doc else None
    decided = decide(spec, np.array([label_logprobs]), np.array([coverage]), applied,
                     None if agreement is None else np.array([agreement]))
    reason = decided.reason[0]
    return {"label": decided.label[0],
            "confidence": None if decided.confidence is None else float(decided.confidence[0]),
            "bucket": decided.bucket[0] + (f" ({reason})" if reason else ""),
            "calibrator": applied.version if applied else None,
            "floor": floor_sentence(None if applied is None else applied.coverage_floor, spec.coverage_floor,
                                    has_champion=applied is not None) if coverage < spec.coverage_floor else None}
