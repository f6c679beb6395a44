"""The `calscore` Typer apps, and what every command shares: the task option and clean failures."""
from __future__ import annotations

from pathlib import Path

import typer

from calscore.jobs.spec import SpecError, TaskSpec, load_spec

app = typer.Typer(
    help="calscore: calibrated confidence scores from a causal LM's first-token probabilities.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


labels_app = typer.Typer(
    help="Import labels and draw audit samples to label.\n\nExample: calscore labels sample --task infra/tasks/demo.toml --n 500 --out to-label.csv",
    no_args_is_help=True,
)
calibrators_app = typer.Typer(
    help="Inspect the calibrator history; promote or roll back by hand.\n\nExample: calscore calibrators list --task infra/tasks/demo.toml",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")
app.add_typer(calibrators_app, name="calibrators")

TaskOption = typer.Option(..., "--task", "-t", help="Path to the task's TOML file.", exists=False)


def task_from(path: Path) -> TaskSpec:
    """Load a task spec or exit with its precise error message."""
    try:
        return load_spec(path)
    except SpecError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1):
    """Print a clear error (no traceback) and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


