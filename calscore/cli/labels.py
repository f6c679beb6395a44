"""Label commands: import labels, draw an audit sample to label."""
from __future__ import annotations

from pathlib import Path

import typer

from calscore.cli.app import TaskOption, fail, labels_app, prefect_api_configured, task_from
from calscore.cli.prefect_api import prefect_ready


@labels_app.command("import")
def labels_import(
    file: Path = typer.Argument(None, help="Parquet or CSV file with columns id, label (optional inclusion_prob)."),
    task: Path = TaskOption,
    from_table: str = typer.Option(None, "--from-table", help="Import from an analyst's DuckDB table instead of a file."),
    source: str = typer.Option(None, help="Who or what produced these labels (default: the file or table name)."),
    no_trigger: bool = typer.Option(False, "--no-trigger", help="Do not start a recalibration even if enough labels arrived."),
    design: str = typer.Option(
        None, "--design", metavar="[random|audit|convenience]",
        help="How the labeled ids were chosen. audit: a `labels sample` audit sample (weights 1 / inclusion "
             "probability; the default when the file or the sample carries them). random: a simple random sample "
             "of all the rows this task version scored, every night (assumed, not checked): each label gets "
             "inclusion probability n labeled / N rows, equal weights. convenience: chosen any other way (the "
             "default otherwise): shown with a warning, never certifies a threshold."),
) -> None:
    """Import labels: validated, idempotent, corrections keep history; may start a recalibration by itself.

    Unknown labels are rejected and reported, valid rows are kept; label names match in any case;
    an id given two different labels in one file is not imported (and named). When this import
    brings the labels new since the last fit to [calibration] refit_after_new_labels, a
    recalibration runs (directly, or via the served deployment's trigger); --no-trigger prevents it.

    Each label is stored with its --design. Only audit and random labels certify a threshold
    (`calscore thresholds`); convenience labels are shown in accuracy tables with a warning.
    Importing the same labels again with another design re-declares them.

    Example: calscore labels import --task infra/tasks/demo.toml var/demo/audit-labels.parquet

    Example: calscore labels import --task infra/tasks/demo.toml --design random var/demo/random-800.csv
    """
    spec = task_from(task)
    if (file is None) == (from_table is None):
        fail("give exactly one of FILE or --from-table NAME", 2)
    from calscore.jobs.labels.importing import DESIGNS

    if design is not None and design not in DESIGNS:
        fail(f"--design must be one of {', '.join(DESIGNS)}, got {design!r}", 2)
    file_path = str(file) if file else None
    if prefect_api_configured():
        from calscore.flows.labels import ingest_labels

        prefect_ready()  # the Prefect API answers within its deadline, or the temporary server has started
        result = ingest_labels(str(spec.source_path), file=file_path, table=from_table, source=source,
                               trigger=not no_trigger, design=design)
    else:  # no Prefect API: the same work in this process, at once
        from calscore.cli.calibrators import recalibrate_task
        from calscore.jobs.labels.ingest import ingest

        result = ingest(spec, file_path, from_table, source, trigger=not no_trigger, design=design)
        if result["new_labels"] is not None:
            result["recalibration"] = recalibrate_task(spec)["decision"]
    typer.echo("\n".join(result["report"]))
    if result.get("recalibration"):
        typer.echo(f"recalibration started by this import: {result['recalibration']}")

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
        fail(str(exc), 2)
    write_sample(sample, out)
    per_bucket = {}
    for b in sample["bucket"].to_pylist():
        per_bucket[b] = per_bucket.get(b, 0) + 1
    typer.echo(f"{sample.num_rows} rows sampled ({sample['sample_id'][0]}) -> {out}")
    for b, k in per_bucket.items():
        typer.echo(f"  {b}: {k}")
