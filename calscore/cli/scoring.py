"""Scoring commands: explain one text, score a file, run the nightly flow, backfill."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import typer

from calscore.cli.app import EXIT_BATCHES_FAILED, TaskOption, app, fail, task_from
from calscore.cli.prefect_api import prefect_ready
from calscore.cli.progress import scoring_progress
from calscore.jobs.spec import TaskSpec, check_answers


def _scorer_or_exit(spec: TaskSpec, *, dtype: str | None = None, **options):
    """The task's scorer (from the one factory), or exit with the reason. `dtype` overrides the
    task's precision for this command only (a backend without a dtype refuses it)."""
    from pydantic import ValidationError

    from calscore.jobs.scoring.errors import ScorerError
    from calscore.jobs.scoring.registry import make_scorer

    config = spec.model
    if dtype is not None:
        if "dtype" not in type(config).model_fields:
            fail(f"--dtype does not apply to the {config.backend} backend", 2)
        try:
            config = type(config).model_validate({**config.model_dump(), "dtype": dtype})
        except ValidationError as exc:
            fail(f"--dtype {dtype}: {exc.errors()[0]['msg']}", 2)
    try:
        return make_scorer(config, spec.prompt, spec.labels, **options)
    except ScorerError as exc:
        fail(str(exc), 1)

DtypeOption = typer.Option(
    None, "--dtype", help="float32 (exact, CPU default) or bfloat16 (about 2x faster on CPU); overrides the task's dtype."
)

@app.command()
def explain(
    text: str = typer.Argument(..., help="The text to classify (quote it)."),
    task: Path = TaskOption,
    top_k: int = typer.Option(10, "--top-k", "-k", min=1, help="How many top first tokens to list."),
    dtype: str = DtypeOption,
) -> None:
    """Show how one text is scored: the model's top first tokens, each label's variants and total, the prediction.

    Answer variants of two labels that share a first token are a task-file error (exit 2), as for score.

    Example: calscore explain --task infra/tasks/demo.toml "A warm, funny and beautifully acted film."
    """
    from calscore.jobs.calibrators.champion import explain_calibrated
    from calscore.jobs.scoring.explain import render_explanation

    spec = check_answers(task_from(task))  # as score does: a task-file error (exit 2) before the model loads
    scorer = _scorer_or_exit(spec, dtype=dtype)
    about = scorer.describe()
    typer.echo(f"model {about['model']}  precision {about['precision']}  task {spec.name} ({spec.task_version})")
    result = scorer.explain(text, top_k=top_k)
    calibrated = explain_calibrated(spec, [row.logprob for row in result.labels], result.coverage, result.agreement)
    typer.echo(render_explanation(result, calibrated=calibrated))

@app.command("score-file")
def score_file_command(
    task: Path = TaskOption,
    input: Path = typer.Option(..., "--input", "-i", help="Parquet file with the task's text column."),
    output: Path = typer.Option(..., "--output", "-o", help="Parquet file to write: input columns + score columns."),
    dtype: str = DtypeOption,
    token_budget: int = typer.Option(None, "--token-budget", min=1, help="Padded tokens per forward pass."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (rows, rows/s, ETA)."),
) -> None:
    """Score a Parquet file with the task's model, without Prefect or the warehouse (ad-hoc runs, benchmarks).

    Answer variants of two labels that share a first token are a task-file error (exit 2), as for score.

    Example: calscore score-file --task infra/tasks/demo.toml --input in.parquet --output scored.parquet
    """
    import json

    from calscore.jobs.scoring.score_file import score_file

    spec = check_answers(task_from(task))  # as score does: a task-file error (exit 2) before the model loads
    scorer = _scorer_or_exit(spec, dtype=dtype, **({"token_budget": token_budget} if token_budget else {}))
    try:
        summary = score_file(scorer, input, output, text_column=spec.input.text_column, progress=progress)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        typer.echo(f"score-file: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({**summary, "task_version": spec.task_version}, indent=2))

RayAddressOption = typer.Option(
    None, "--ray-address",
    help="Score on this Ray cluster ('auto', 'host:port', 'ray://host:10001') instead of the task file's [execution].")

NightOption = typer.Option(
    None, "--night", formats=["%Y-%m-%d"],
    help="The night these rows belong to in reports (YYYY-MM-DD); default: the date the run was scheduled for "
         "(today, UTC, when started by hand).")


def echo_summary(run) -> None:
    """Run a scoring flow and print its plain-text summary; exit 4 when batches failed (the good ones were written)."""
    from calscore.flows.failures import BatchesFailed

    try:
        summary = run()
    except BatchesFailed as exc:
        typer.echo(exc.summary["text"])
        raise typer.Exit(EXIT_BATCHES_FAILED) from None
    typer.echo(summary["text"])


@app.command()
def score(
    task: Path = TaskOption,
    wait: float = typer.Option(0.0, help="Seconds to wait for another run of this task to finish instead of refusing."),
    ray_address: str = RayAddressOption,
    night: datetime = NightOption,
) -> None:
    """Run the nightly scoring flow once: score every new batch of the task's input location.

    Progress: a bar per batch on a terminal, plain lines every 10 s otherwise (a pipe, a log file).
    Without PREFECT_API_URL a temporary Prefect server starts first (it says so every 10 s while it
    waits); with it, the API must answer within CALSCORE_PREFECT_CONNECT_TIMEOUT seconds (default 30),
    else one line naming it and exit 2, before the lock.

    Example: calscore score --task infra/tasks/demo.toml --night 2026-11-30
    """
    from calscore.flows.nightly import nightly_scoring

    spec = check_answers(task_from(task))
    prefect_ready()  # the Prefect API answers within its deadline, or the temporary server has started
    with scoring_progress():  # a bar on a terminal, plain lines elsewhere
        echo_summary(lambda: nightly_scoring(str(spec.source_path), wait_seconds=wait, ray_address=ray_address,
                                             night=night.date() if night else None))

@app.command()
def rescore(
    task: Path = TaskOption,
    since: datetime = typer.Option(..., help="Rescore batches completed on or after this date (YYYY-MM-DD)."),
    wait: float = typer.Option(0.0, help="Seconds to wait for another scoring run to finish."),
    ray_address: str = RayAddressOption,
    night: datetime = NightOption,
) -> None:
    """Explicit backfill after a prompt or model change; nothing is rescored silently.

    Scores again, under the current task_version, the batches done since DATE under an older one.
    Progress, the temporary Prefect server and the Prefect API's deadline as for score.

    Example: calscore rescore --task infra/tasks/demo.toml --since 2026-11-01
    """
    from calscore.flows.nightly import rescore as rescore_flow

    spec = check_answers(task_from(task))
    prefect_ready()  # the Prefect API answers within its deadline, or the temporary server has started
    with scoring_progress():  # a bar on a terminal, plain lines elsewhere
        echo_summary(lambda: rescore_flow(str(spec.source_path), since=since.replace(tzinfo=timezone.utc),
                                          wait_seconds=wait, ray_address=ray_address,
                                          night=night.date() if night else None))
