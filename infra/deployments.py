"""Prefect deployments for one task: nightly scoring on a cron schedule,
recalibration on a weekly schedule plus a trigger on the label-import event, and
fine-tuning on demand (no schedule: `prefect deployment run calscore-finetune/finetune-<task>`).

    calscore serve --task infra/tasks/demo.toml      # serves both, in this process
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta

from prefect.runner import Runner
from prefect.events import DeploymentEventTrigger

from calscore.flows.events import LABELS_IMPORTED, resource_id
from calscore.flows.finetune import finetune
from calscore.flows.labels import recalibration_deployment_name
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
    # A person starts it (a new adapter is a new task version to review, not a nightly chore).
    tune = finetune.to_deployment(
        name=f"finetune-{spec.name}", parameters=params,
        description=f"Train a LoRA adapter on the labels of {spec.name} and compare it with the base model.",
    )
    return [nightly, recalibrate, tune]


async def _serve_until_signalled(runner: Runner) -> None:
    """Run `runner` until SIGTERM or SIGINT, then stop it: in-flight runs are cancelled (their
    processes get SIGTERM and record the run as failed), nothing is left Running."""
    loop = asyncio.get_running_loop()
    started = asyncio.create_task(runner.start())
    while not runner.started and not started.done():  # Runner.start installs its own SIGTERM handler: replace it
        await asyncio.sleep(0.05)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await asyncio.wait([started, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if runner.started:
        await runner.astop()
    with contextlib.suppress(asyncio.CancelledError):
        await started


def serve_task(task_path: str, interval: timedelta | None = None) -> None:
    """Serve the task's deployments until SIGTERM or SIGINT (Ctrl-C), then stop cleanly.

    Prefect's own `serve` handles SIGTERM with a traceback and can leave runs Running;
    this stops the runner from the event loop instead."""
    runner = Runner(pause_on_shutdown=False)
    for deployment in deployments(task_path, interval=interval):
        runner.add_deployment(deployment)
    asyncio.run(_serve_until_signalled(runner))
