"""Calibrator commands: recalibrate, and a person's view and overrides of the calibrator history."""
from __future__ import annotations

from pathlib import Path

import typer

from calscore.cli.app import TaskOption, app, calibrators_app, fail, prefect_api_configured, task_from
from calscore.cli.prefect_api import prefect_ready
from calscore.jobs.warehouse.connection import WarehouseError


@app.command()
def recalibrate(task: Path = TaskOption) -> None:
    """Refit the calibrator from the labels; promote it only if better on held-out labels.

    The challenger is fit on all labels but the newest slice, compared with the champion (or
    the raw scores) on that slice, and a reliability snapshot is logged. Runs as a Prefect flow
    when a Prefect API is configured (PREFECT_API_URL), else directly in this process.

    Example: calscore recalibrate --task infra/tasks/demo.toml
    """
    spec = task_from(task)
    typer.echo(recalibrate_task(spec)["markdown"])


def recalibrate_task(spec) -> dict:
    """The recalibration flow when a Prefect API is configured; else the same work in this process, at once
    (no temporary Prefect server to wait for)."""
    if prefect_api_configured():
        from calscore.flows.recalibration import recalibration

        prefect_ready()  # the Prefect API answers within its deadline, or the temporary server has started
        return recalibration(str(spec.source_path))
    from calscore.jobs.calibrators.recalibrate import run_recalibration
    from calscore.jobs.reports.reliability_diagram import snapshot_diagram

    return run_recalibration(spec, diagram=snapshot_diagram(spec))


@calibrators_app.command("list")
def calibrators_list(task: Path = TaskOption) -> None:
    """List the task_version's calibrators and every promotion decision.

    Example: calscore calibrators list --task infra/tasks/demo.toml
    """
    from calscore.jobs.calibrators.admin import history_text

    try:
        typer.echo(history_text(task_from(task)))
    except (FileNotFoundError, WarehouseError) as exc:
        fail(str(exc), 2)


@calibrators_app.command("promote")
def calibrators_promote(
    version: str = typer.Argument(..., help="The calibrator version id to make champion."),
    task: Path = TaskOption,
    reason: str = typer.Option(..., help="Why (recorded with the decision)."),
    actor: str = typer.Option(None, help="Who decided (default: the login name)."),
) -> None:
    """Make a stored calibrator the champion by hand; recorded as a manual promotion.

    Example: calscore calibrators promote 3f2a9c1e5b7d4a60 --task infra/tasks/demo.toml --reason "reviewed the diagram"
    """
    from calscore.jobs.calibrators.admin import manual_promote

    try:
        typer.echo(manual_promote(task_from(task), version, actor, reason))
    except ValueError as exc:
        fail(str(exc), 2)


@calibrators_app.command("rollback")
def calibrators_rollback(
    task: Path = TaskOption,
    reason: str = typer.Option(..., help="Why (recorded with the decision)."),
    actor: str = typer.Option(None, help="Who decided (default: the login name)."),
) -> None:
    """Go back to the previous champion; recorded as a rollback.

    Example: calscore calibrators rollback --task infra/tasks/demo.toml --reason "drift after the prompt fix"
    """
    from calscore.jobs.calibrators.admin import manual_rollback

    try:
        typer.echo(manual_rollback(task_from(task), actor, reason))
    except ValueError as exc:
        fail(str(exc), 2)


@calibrators_app.command("export")
def calibrators_export(
    version: str = typer.Argument(..., help="The calibrator version id."),
    task: Path = TaskOption,
    out: Path = typer.Option(..., "--out", help="JSON file to write."),
) -> None:
    """Write a stored calibrator's JSON document to a file, for review.

    Example: calscore calibrators export 3f2a9c1e5b7d4a60 --task infra/tasks/demo.toml --out calibrator.json
    """
    from calscore.jobs.calibrators.admin import export_calibrator

    try:
        typer.echo(export_calibrator(task_from(task), version, out))
    except ValueError as exc:
        fail(str(exc), 2)


@calibrators_app.command("import")
def calibrators_import(
    file: Path = typer.Argument(..., help="A calibrator JSON document."),
    task: Path = TaskOption,
    actor: str = typer.Option(None, help="Who imports it (default: the login name)."),
) -> None:
    """Store a calibrator document file as a candidate; a tampered file or another task_version is refused.

    Example: calscore calibrators import calibrator.json --task infra/tasks/demo.toml
    """
    from calscore.calibration_store.document import DocumentError
    from calscore.jobs.calibrators.admin import import_calibrator

    try:
        typer.echo(import_calibrator(task_from(task), file, actor))
    except (DocumentError, ValueError) as exc:
        fail(str(exc), 2)
