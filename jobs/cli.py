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
    from jobs.demo_data import write_demo_batches
    from jobs.demo_model import ensure_demo_model

    typer.echo(f"demo model: {ensure_demo_model()}")
    written = write_demo_batches(batches, labels)
    typer.echo(f"demo batches: {len(written)} files in {batches}; labels in {labels}")


def _scorer_or_exit(spec: TaskSpec, *, dtype: str | None = None, token_budget: int | None = None, top_k: int = 0):
    """Load the task's model and resolve its verbalizers, or exit with the reason."""
    from jobs.first_token import FirstTokenScorer
    from jobs.model_loading import ModelLoadError, load_model
    from jobs.prompting import PromptError
    from jobs.verbalizers import VerbalizerError

    try:
        return FirstTokenScorer(load_model(spec.model, dtype_override=dtype), spec, token_budget=token_budget, top_k=top_k)
    except (ModelLoadError, PromptError, VerbalizerError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


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

    Example: calscore explain --task infra/tasks/demo.toml "A warm, funny and beautifully acted film."
    """
    from jobs.explain import explain_text, render_explanation

    spec = task_from(task)
    scorer = _scorer_or_exit(spec, dtype=dtype)
    typer.echo(f"model {scorer.loaded.reference}  dtype {scorer.loaded.dtype}  task {spec.name} ({spec.task_version})")
    typer.echo(render_explanation(explain_text(scorer, text, top_k=top_k)))


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

    Example: calscore score-file --task infra/tasks/demo.toml --input in.parquet --output scored.parquet
    """
    import json

    from jobs.score_file import score_file

    spec = task_from(task)
    scorer = _scorer_or_exit(spec, dtype=dtype, token_budget=token_budget)
    try:
        summary = score_file(spec, input, output, progress=progress, scorer=scorer)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        typer.echo(f"score-file: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summary, indent=2))


if __name__ == "__main__":
    app()
