"""The `calscore` command line. Each command's docstring is its --help, with an example."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import typer

from calscore.jobs.spec import SpecError, TaskSpec, load_spec
from calscore.jobs.warehouse.connection import WarehouseError

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


def _scorer_or_exit(spec: TaskSpec, *, dtype: str | None = None, **options):
    """The task's scorer (from the one factory), or exit with the reason. `dtype` overrides the
    task's precision for this command only (a backend without a dtype refuses it)."""
    from pydantic import ValidationError

    from calscore.jobs.scoring.errors import ScorerError
    from calscore.jobs.scoring.registry import make_scorer

    config = spec.model
    if dtype is not None:
        if "dtype" not in type(config).model_fields:
            _fail(f"--dtype does not apply to the {config.backend} backend", 2)
        try:
            config = type(config).model_validate({**config.model_dump(), "dtype": dtype})
        except ValidationError as exc:
            _fail(f"--dtype {dtype}: {exc.errors()[0]['msg']}", 2)
    try:
        return make_scorer(config, spec.prompt, spec.labels, **options)
    except ScorerError as exc:
        _fail(str(exc), 1)


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
    from calscore.jobs.calibrators.champion import explain_calibrated
    from calscore.jobs.scoring.explain import render_explanation

    spec = task_from(task)
    scorer = _scorer_or_exit(spec, dtype=dtype)
    about = scorer.describe()
    typer.echo(f"model {about['model']}  precision {about['precision']}  task {spec.name} ({spec.task_version})")
    result = scorer.explain(text, top_k=top_k)
    calibrated = explain_calibrated(spec, [row.logprob for row in result.labels], result.coverage)
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

    Example: calscore score-file --task infra/tasks/demo.toml --input in.parquet --output scored.parquet
    """
    import json

    from calscore.jobs.scoring.score_file import score_file

    spec = task_from(task)
    scorer = _scorer_or_exit(spec, dtype=dtype, **({"token_budget": token_budget} if token_budget else {}))
    try:
        summary = score_file(scorer, input, output, text_column=spec.input.text_column, progress=progress)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        typer.echo(f"score-file: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({**summary, "task_version": spec.task_version}, indent=2))


# --- the nightly loop: scoring, labels, recalibration, status -------------------------------

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


def _fail(message: str, code: int = 1):
    """Print a clear error (no traceback) and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


@app.command()
def score(
    task: Path = TaskOption,
    wait: float = typer.Option(0.0, help="Seconds to wait for another run of this task to finish instead of refusing."),
) -> None:
    """Run the nightly scoring flow once: score every new batch of the task's input location.

    Example: calscore score --task infra/tasks/demo.toml
    """
    from calscore.flows.nightly import nightly_scoring
    from calscore.jobs.warehouse.runs import RunLocked

    spec = task_from(task)
    try:
        summary = nightly_scoring(str(spec.source_path), wait_seconds=wait)
    except RunLocked as exc:
        _fail(str(exc), 3)
    typer.echo(summary["markdown"])
    if summary["batches_failed"]:
        raise typer.Exit(4)


@app.command()
def rescore(
    task: Path = TaskOption,
    since: datetime = typer.Option(..., help="Rescore batches completed on or after this date (YYYY-MM-DD)."),
    wait: float = typer.Option(0.0, help="Seconds to wait for another scoring run to finish."),
) -> None:
    """Explicit backfill after a prompt or model change; nothing is rescored silently.

    Scores again, under the current task_version, the batches done since DATE under an older one.

    Example: calscore rescore --task infra/tasks/demo.toml --since 2026-11-01
    """
    from calscore.flows.nightly import rescore as rescore_flow
    from calscore.jobs.warehouse.runs import RunLocked

    spec = task_from(task)
    try:
        summary = rescore_flow(str(spec.source_path), since=since.replace(tzinfo=timezone.utc), wait_seconds=wait)
    except RunLocked as exc:
        _fail(str(exc), 3)
    typer.echo(summary["markdown"])


@labels_app.command("import")
def labels_import(
    file: Path = typer.Argument(None, help="Parquet or CSV file with columns id, label (optional inclusion_prob)."),
    task: Path = TaskOption,
    from_table: str = typer.Option(None, "--from-table", help="Import from an analyst's DuckDB table instead of a file."),
    source: str = typer.Option(None, help="Who or what produced these labels (default: the file or table name)."),
    no_trigger: bool = typer.Option(False, "--no-trigger", help="Do not start a recalibration even if enough labels arrived."),
) -> None:
    """Import labels: validated, idempotent, corrections keep history; may trigger recalibration.

    Unknown labels are rejected and reported, valid rows are kept. When enough new labels
    arrived since the last fit, recalibration runs (directly, or via the served deployment's trigger).

    Example: calscore labels import --task infra/tasks/demo.toml var/demo/audit-labels.parquet
    """
    from calscore.flows.labels import ingest_labels
    from calscore.jobs.labels.importing import LabelFileError

    spec = task_from(task)
    if (file is None) == (from_table is None):
        _fail("give exactly one of FILE or --from-table NAME", 2)
    try:
        result = ingest_labels(str(spec.source_path), file=str(file) if file else None, table=from_table,
                               source=source, trigger=not no_trigger)
    except LabelFileError as exc:
        _fail(str(exc), 2)
    typer.echo("\n".join(result["report"]))
    if result.get("recalibration"):
        typer.echo(f"recalibration: {result['recalibration']}")


@labels_app.command("sample")
def labels_sample(
    task: Path = TaskOption,
    n: int = typer.Option(500, "--n", min=1, help="How many rows to sample."),
    out: Path = typer.Option(..., "--out", help="Where to write the sample (.parquet or .csv) for labelling."),
    seed: int = typer.Option(None, help="Random seed (for a reproducible sample)."),
) -> None:
    """Draw a random, bucket-stratified audit sample of predictions to label.

    Each row's inclusion probability is recorded, so its label can be weighted and the
    figures speak for all rows, not just the reviewed ones.

    Example: calscore labels sample --task infra/tasks/demo.toml --n 500 --out var/demo/to-label.csv
    """
    from calscore.jobs.labels.audit import draw_audit_sample, write_sample

    spec = task_from(task)
    try:
        sample = draw_audit_sample(spec, n, seed=seed)
    except ValueError as exc:
        _fail(str(exc), 2)
    write_sample(sample, out)
    per_bucket = {}
    for b in sample["bucket"].to_pylist():
        per_bucket[b] = per_bucket.get(b, 0) + 1
    typer.echo(f"{sample.num_rows} rows sampled ({sample['sample_id'][0]}) -> {out}")
    for b, k in per_bucket.items():
        typer.echo(f"  {b}: {k}")


@app.command()
def recalibrate(task: Path = TaskOption) -> None:
    """Refit the calibrator from the labels; promote it only if better on held-out labels.

    The challenger is fit on all labels but the newest slice, compared with the champion (or
    the raw scores) on that slice, and a reliability snapshot is logged.

    Example: calscore recalibrate --task infra/tasks/demo.toml
    """
    from calscore.flows.recalibration import recalibration
    from calscore.jobs.warehouse.runs import RunLocked

    spec = task_from(task)
    try:
        result = recalibration(str(spec.source_path))
    except RunLocked as exc:
        _fail(str(exc), 3)
    typer.echo(result["markdown"])


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
        _fail(str(exc), 2)


@calibrators_app.command("list")
def calibrators_list(task: Path = TaskOption) -> None:
    """List the task_version's calibrators and every promotion decision.

    Example: calscore calibrators list --task infra/tasks/demo.toml
    """
    from calscore.jobs.calibrators.admin import history_text

    try:
        typer.echo(history_text(task_from(task)))
    except (FileNotFoundError, WarehouseError) as exc:
        _fail(str(exc), 2)


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
        _fail(str(exc), 2)


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
        _fail(str(exc), 2)


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
        _fail(str(exc), 2)


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
        _fail(str(exc), 2)


@app.command()
def thresholds(
    task: Path = TaskOption,
    target: float = typer.Option(0.90, min=0.5, max=0.999, help="Accuracy the automated rows must reach (lower 95% bound)."),
    night: str = typer.Option(None, help="Only this night's rows (YYYY-MM-DD); default all."),
) -> None:
    """Pick the lowest confidence threshold whose accuracy lower bound reaches the target.

    For thresholds 0.50-0.99: rows at or above, their accuracy estimated from audit labels, and a
    one-sided 95% Clopper-Pearson lower bound.

    Example: calscore thresholds --task infra/tasks/demo.toml --target 0.90
    """
    from calscore.jobs.reports.thresholds import thresholds_text

    spec = task_from(task)
    try:
        typer.echo(thresholds_text(spec, target, night))
    except (ValueError, FileNotFoundError, WarehouseError) as exc:
        _fail(str(exc), 2)


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
        _fail(str(exc), 2)


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


if __name__ == "__main__":
    app()
