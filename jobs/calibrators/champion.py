"""The champion calibrator a scoring run applies: looked up once per run by
version id, loaded (hash- and task_version-checked) once per process."""
from __future__ import annotations

from functools import lru_cache

from calscore.calibration_store.store import champion, load_version
from calscore.jobs.spec import TaskSpec
from calscore.jobs.batches.stage import AppliedCalibrator
from calscore.jobs.warehouse.connection import reader


def champion_version(spec: TaskSpec) -> str | None:
    """The version id of this task_version's champion, or None (no warehouse or no champion yet)."""
    if not spec.warehouse.path.exists():
        return None
    with reader(spec.warehouse.path) as con:
        current = champion(con, spec.task_version)
    return current["version"] if current else None


@lru_cache(maxsize=8)
def _load(warehouse: str, task_version: str, version: str):
    with reader(warehouse) as con:
        return load_version(con, version, task_version)


def applied_calibrator(spec: TaskSpec, version: str | None) -> AppliedCalibrator | None:
    if version is None:
        return None
    return AppliedCalibrator(version, _load(str(spec.warehouse.path), spec.task_version, version))


def explain_calibrated(spec: TaskSpec, label_logprobs: list[float], coverage: float) -> dict | None:
    """The champion's view of one row for `calscore explain`: calibrated label, confidence, bucket."""
    import numpy as np

    from calscore.jobs.decisions import assign_buckets

    version = champion_version(spec)
    if version is None:
        return None
    probs = applied_calibrator(spec, version).calibrator.predict_proba(np.array([label_logprobs]))[0]
    best = int(probs.argmax())
    bucket, reason = assign_buckets(probs[best:best + 1], np.array([coverage]), spec.buckets, spec.coverage_floor)
    return {"label": spec.label_names[best], "confidence": float(probs[best]),
            "bucket": bucket[0] + (f" ({reason[0]})" if reason[0] else ""), "calibrator": version}
