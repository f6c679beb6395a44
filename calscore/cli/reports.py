"""Read-only commands: status, thresholds and the HTML report."""
from __future__ import annotations

from pathlib import Path

import typer

from calscore.cli.app import TaskOption, app, fail, task_from
from calscore.jobs.warehouse.connection import WarehouseError


@app.command()
def status(task: Path = TaskOption) -> None:
    """Batches done / pending / failed, the last run, and the champion calibrator with its last snapshot.

    Example: calscore status --task infra/tasks/demo.toml
    """
    from calscore.jobs.reports.status import task_status

    spec = task_from(task)
    try:
        typer.echo(task_status(spec))
    except (FileNotFoundError, WarehouseError) as exc:
        fail(str(exc), 2)

@app.command()
def thresholds(
    task: Path = TaskOption,
    target: float = typer.Option(0.90, min=0.5, max=0.999, help="Accuracy the automated rows must reach (lower 95% bound)."),
    night: str = typer.Option(None, help="Only this night's rows (YYYY-MM-DD); default all."),
) -> None:
    """Pick a confidence threshold whose accuracy reaches the target, with a 95% guarantee for the whole scan.

    For thresholds 0.50-0.99: rows at or above, their accuracy estimated from audit labels, and a
    one-sided 95% Clopper-Pearson lower bound. The thresholds are tested from the highest down
    (fixed-sequence testing, as in Learn then Test) and the first whose bound misses the target ends
    the scan; the chosen threshold is the last that passed.

    Example: calscore thresholds --task infra/tasks/demo.toml --target 0.90
    """
    from calscore.jobs.reports.thresholds import thresholds_text

    spec = task_from(task)
    try:
        typer.echo(thresholds_text(spec, target, night))
    except (ValueError, FileNotFoundError, WarehouseError) as exc:
        fail(str(exc), 2)

@app.command()
def report(
    task: Path = TaskOption,
    out: Path = typer.Option(Path("var/reports"), "--out", help="Folder for the HTML report and its PNGs."),
    night: str = typer.Option(None, help="Report on this night (YYYY-MM-DD); default all nights."),
) -> None:
    """Write a self-contained HTML report of calibration, buckets and thresholds.

    Reliability diagrams, decision buckets, threshold analysis, segments, label budget,
    calibrator history and bucket counts per night.

    Example: calscore report --task infra/tasks/demo.toml --out var/reports
    """
    from calscore.jobs.reports.html_report import write_report

    spec = task_from(task)
    try:
        typer.echo(write_report(spec, out, night))
    except (ValueError, FileNotFoundError, WarehouseError) as exc:
        fail(str(exc), 2)
