"""Setting up and running the whole thing: init, prepare-demo, demo, serve."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer

from calscore.cli.app import TaskOption, app, task_from


@app.command()
def init(task: Path = TaskOption) -> None:
    """Create the task's DuckDB warehouse (or bring its schema up to date). Safe to run twice.

    Example: calscore init --task infra/tasks/demo.toml
    """
    from calscore.jobs.warehouse.connection import writer

    spec = task_from(task)
    with writer(spec.warehouse.path) as con:
        version = con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0]
    typer.echo(f"warehouse {spec.warehouse.path} at schema version {version}")
    typer.echo(f"task {spec.name}  task_version {spec.task_version}")

@app.command("prepare-demo")
def prepare_demo(
    batches: Path = typer.Option(Path("var/demo/batches"), help="Folder for the nightly Parquet batches."),
    labels: Path = typer.Option(Path("var/demo/labels.parquet"), help="Where the demo's labels are kept apart."),
) -> None:
    """Prepare the embedded demo model (once) and write the seeded demo batches and labels.

    Example: calscore prepare-demo --batches var/demo/batches
    """
    from calscore.jobs.demo.data import write_demo_batches
    from calscore.jobs.scoring.embedded_model import ensure_demo_model

    typer.echo(f"demo model: {ensure_demo_model()}")
    written = write_demo_batches(batches, labels)
    typer.echo(f"demo batches: {len(written)} files in {batches}; labels in {labels}")

@app.command()
def demo(task: Path = typer.Option(Path("infra/tasks/demo.toml"), "--task", "-t", help="The demo task file.")) -> None:
    """Run the whole story on the embedded default model and demo data.

    Night 1 without a calibrator, an audit sample labeled, recalibration, night 2 calibrated,
    then the report. Starts the demo's own folder (var/demo) afresh.

    Example: calscore demo
    """
    from calscore.flows.demo import run_demo

    spec = task_from(task)
    run_demo(str(spec.source_path), say=typer.echo)

@app.command()
def serve(
    task: Path = TaskOption,
    interval: float = typer.Option(None, help="Seconds between runs instead of the cron schedules (demos, tests)."),
) -> None:
    """Serve the task's Prefect deployments until interrupted.

    Nightly scoring on a cron schedule; recalibration weekly and on the label-import trigger.
    Schedules and triggers need a Prefect server (`prefect server start`, PREFECT_API_URL).

    Example: calscore serve --task infra/tasks/demo.toml
    """
    from calscore.infra.deployments import serve_task

    spec = task_from(task)
    serve_task(str(spec.source_path), interval=timedelta(seconds=interval) if interval else None)
