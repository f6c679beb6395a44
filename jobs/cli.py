"""The `calscore` command line. Each command's docstring is its --help, with an example."""
from __future__ import annotations

from pathlib import Path

import typer

from jobs.spec import SpecError, TaskSpec, load_spec

app = typer.Typer(
    help="calscore: calibrated confidence scores from a causal LM's first-token probabilities.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TaskOption = typer.Option(..., "--task", "-t", help="Path to the task's TOML file.", exists=False)


def task_from(path: Path) -> TaskSpec:
    """Load a task spec or exit with its precise error message."""
    try:
        return load_spec(path)
    except SpecError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def init(task: Path = TaskOption) -> None:
    """Create the task's DuckDB warehouse (or bring its schema up to date). Safe to run twice.

    Example: calscore init --task infra/tasks/demo.toml
    """
    from jobs.warehouse import writer

    spec = task_from(task)
    with writer(spec.warehouse.path) as con:
        version = con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
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
    from jobs.demo_data import write_demo_batches
    from jobs.demo_model import ensure_demo_model

    typer.echo(f"demo model: {ensure_demo_model()}")
    written = write_demo_batches(batches, labels)
    typer.echo(f"demo batches: {len(written)} files in {batches}; labels in {labels}")


if __name__ == "__main__":
    app()
