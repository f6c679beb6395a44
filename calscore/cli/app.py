"""The `calscore` Typer apps, and what every command shares: the task option, clean failures,
`--version` and `--debug`.

An error calscore raises on purpose (`CalscoreError`, a tampered calibrator document) is
printed as one line with a non-zero exit code; a traceback only for bugs, or with --debug.
Library noise (transformers' deprecation warnings, weight-loading bars) stays off the
console unless --debug.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import typer
from typer.core import TyperGroup

from calscore import __version__
from calscore.calibration_store.document import DocumentError
from calscore.cli.supervisor import needs_supervision, supervise
from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.spec import SpecError, TaskSpec, check_resources, load_spec

EXPECTED = (CalscoreError, DocumentError)
# Exit codes a script can tell apart: 1 an expected failure, 2 bad input (task file, labels), 3 another
# run holds the lock, 4 some batches failed (the good ones were written).
EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_BATCHES_FAILED = 2, 3, 4
_state = {"debug": False}


def exit_code(exc: BaseException) -> int:
    from calscore.flows.failures import BatchesFailed
    from calscore.jobs.labels.importing import LabelFileError
    from calscore.jobs.warehouse.runs import RunLocked

    for kind, code in ((SpecError, EXIT_BAD_INPUT), (LabelFileError, EXIT_BAD_INPUT), (RunLocked, EXIT_LOCKED),
                       (BatchesFailed, EXIT_BATCHES_FAILED)):
        if isinstance(exc, kind):
            return code
    return 1


def escape_markup(command) -> None:
    """Escape rich markup in the help texts of `command`, its parameters and sub-commands, in place: the texts
    are plain, and rich's help formatter read a '[execution]' or '[calibration]' (a task file's section) as a
    style tag and dropped it."""
    from rich.markup import escape

    for item in (command, *command.params):
        for field in ("help", "short_help", "epilog"):
            if getattr(item, field, None):
                setattr(item, field, escape(getattr(item, field)))
    for sub in getattr(command, "commands", {}).values():
        escape_markup(sub)


class CleanFailures(TyperGroup):
    """Runs a command; an expected error becomes one line on stderr and its exit code. Built with every command
    below it, it escapes their help texts (`escape_markup`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.rich_markup_mode == "rich":
            escape_markup(self)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EXPECTED as exc:
            if _state["debug"]:
                raise
            typer.echo(str(exc), err=True)
            raise typer.Exit(exit_code(exc)) from None


def quiet_libraries() -> None:
    """Keep third-party warnings and progress bars off the console (shown again with --debug)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("transformers", "huggingface_hub", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


class SupervisedApp(typer.Typer):
    """Called as the console script: a command that runs work runs under the supervisor, which stops it and
    everything it started on SIGINT/SIGTERM (calscore.cli.supervisor). Tests invoke the commands in-process."""

    def __call__(self, *args, **kwargs):
        if needs_supervision(sys.argv[1:]):
            sys.exit(supervise(sys.argv[1:]))
        return super().__call__(*args, **kwargs)


app = SupervisedApp(
    help="calscore: calibrated confidence scores from a causal LM's first-token probabilities.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=CleanFailures,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"calscore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and library warnings."),
) -> None:
    """calscore: calibrated confidence scores from a causal LM's first-token probabilities."""
    _state["debug"] = debug
    if not debug:
        quiet_libraries()


labels_app = typer.Typer(
    help="Import labels and draw audit samples to label.\n\nExample: calscore labels sample --task infra/tasks/demo.toml --n 500 --out to-label.csv",
    no_args_is_help=True,
)
calibrators_app = typer.Typer(
    help="Inspect the calibrator history; promote or roll back by hand.\n\nExample: calscore calibrators list --task infra/tasks/demo.toml",
    no_args_is_help=True,
)
batches_app = typer.Typer(
    help="The batch ledger: retry failed batches.\n\nExample: calscore batches retry --task infra/tasks/demo.toml --all",
    no_args_is_help=True,
)
runs_app = typer.Typer(
    help="Run locks: release the lock of a run whose process is gone.\n\nExample: calscore runs release RUN_ID --task infra/tasks/demo.toml --reason 'host replaced'",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")
app.add_typer(calibrators_app, name="calibrators")
app.add_typer(batches_app, name="batches")
app.add_typer(runs_app, name="runs")

TaskOption = typer.Option(..., "--task", "-t", help="Path to the task's TOML file.", exists=False)


def task_from(path: Path) -> TaskSpec:
    """Load a task spec and check what it points at, before any flow starts (a SpecError becomes
    one line and exit code 2)."""
    from calscore.jobs.warehouse.connection import check_opens

    return check_opens(check_resources(load_spec(path)))


def prefect_api_configured() -> bool:
    """Whether a Prefect API is configured (PREFECT_API_URL, a profile, a test harness). Without one, the
    commands a person runs by hand (labels import, recalibrate) do their work in-process instead of
    waiting 10-30 s for a temporary Prefect server."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def fail(message: str, code: int = 1):
    """Print a clear error (no traceback) and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)
