"""The Prefect events calscore emits, on a resource per task (an automation or a trigger matches them).

- `calscore.labels.imported`: enough new labels arrived; the recalibration deployment's trigger runs it.
- `calscore.health.warning`: a night crossed a `[health]` threshold; the payload carries the checks.
"""
from __future__ import annotations

LABELS_IMPORTED = "calscore.labels.imported"
HEALTH_WARNING = "calscore.health.warning"


def resource_id(task_name: str) -> str:
    return f"calscore.task.{task_name}"
