"""Setting up and running the whole thing: init, prepare-demo, demo, serve."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer

from calscore.cli.app import EXIT_BAD_INPUT, TaskOption, app, batches_app, fail, runs_app, task_from
from calscore.cli.prefect_api import prefect_ready


@app.command()
def init(task: Path = TaskOption) -> None:
    """Create the task's DuckDB warehouse (or bring its schema up to date). Safe to run twice.

    Example: calscore init --task infra/tasks/demo.toml
    """
    from calscore.jobs.warehouse.connection import writer
    from calscore.jobs.warehouse.read_copy import publish_read_copy

    spec = task_from(task)
    with writer(spec.warehouse.path) as con:
        version = con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0]
    copy = publish_read_copy(spec.warehouse.path)
    typer.echo(f"warehouse {spec.warehouse.path} at schema version {version}; analysts' read copy: {copy}")
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
    prefect_ready()  # the Prefect API answers within its deadline, or the temporary server has started
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
    prefect_ready()  # the Prefect API answers within its deadline, or the temporary server has started
    serve_task(str(spec.source_path), interval=timedelta(seconds=interval) if interval else None)
    typer.echo("calscore serve: stopped")


@batches_app.command("retry")
def batches_retry(
    keys: list[str] = typer.Argument(None, help="Batch keys (file paths relative to the input location) to retry."),
    task: Path = TaskOption,
    all_failed: bool = typer.Option(False, "--all", help="Retry every failed batch."),
) -> None:
    """Make failed batches pending again, so the next run scores them (a failed batch is otherwise left alone).

    Example: calscore batches retry --task infra/tasks/demo.toml night-003.parquet
    """
    from calscore.jobs.warehouse.ledger import retry_failed

    if bool(keys) == all_failed:
        fail("give batch keys or --all", EXIT_BAD_INPUT)
    retried = retry_failed(task_from(task), None if all_failed else keys)
    typer.echo(f"{len(retried)} failed batch(es) pending again" + "".join(f"\n  {key}" for key in retried))


@runs_app.command("release")
def runs_release(
    run_id: str = typer.Argument(..., help="The run whose lock to release (its id is in the refusal message)."),
    task: Path = TaskOption,
    reason: str = typer.Option(..., help="Why (recorded with the run)."),
    actor: str = typer.Option(None, help="Who (default: the login name)."),
) -> None:
    """Release a run's lock by hand when its process is gone for sure (e.g. on a host that no longer exists).

    Example: calscore runs release score-20261130T020000-1a2b3c4d --task infra/tasks/demo.toml --reason "host replaced"
    """
    import getpass

    from calscore.jobs.warehouse.runs import release

    spec = task_from(task)
    typer.echo(release(spec.warehouse.path, spec.name, run_id, actor or getpass.getuser(), reason))
