"""Prefect deployments for one task: nightly scoring on a cron schedule, and
recalibration on a weekly schedule plus a trigger on the label-import event.

    calscore serve --task infra/tasks/demo.toml      # serves both, in this process
"""
from __future__ import annotations

from datetime import timedelta

from prefect import serve
from prefect.events import DeploymentEventTrigger

from calscore.flows.labels import LABELS_IMPORTED, recalibration_deployment_name, resource_id
from calscore.flows.nightly import nightly_scoring
from calscore.flows.recalibration import recalibration
from calscore.jobs.spec import load_spec

NIGHTLY_CRON = "0 2 * * *"  # 02:00 every night
RECALIBRATION_CRON = "0 6 * * 1"  # Mondays 06:00, in case labels arrived without a trigger


def deployments(task_path: str, nightly_cron: str = NIGHTLY_CRON, recalibration_cron: str = RECALIBRATION_CRON,
                interval: timedelta | None = None) -> list:
    """The task's deployments; `interval` replaces both cron schedules (tests, demos)."""
    spec = load_spec(task_path)
    params = {"task_path": str(spec.source_path)}
    schedule = {"interval": interval} if interval else {}
    nightly = nightly_scoring.to_deployment(
        name=f"nightly-{spec.name}", parameters=params, **(schedule or {"cron": nightly_cron}),
        description=f"Score new batches of {spec.name} every night.",
    )
    recalibrate = recalibration.to_deployment(
        name=recalibration_deployment_name(spec.name), parameters=params,
        **({"cron": recalibration_cron} if not interval else {}),
        triggers=[
            DeploymentEventTrigger(
                expect={LABELS_IMPORTED},
                match={"prefect.resource.id": resource_id(spec.name)},
                parameters=params,
            )
        ],
        description=f"Refit the calibrator of {spec.name} when enough labels arrive.",
    )
    return [nightly, recalibrate]


def serve_task(task_path: str, interval: timedelta | None = None) -> None:
    """Serve the task's deployments until interrupted."""
    serve(*deployments(task_path, interval=interval))
