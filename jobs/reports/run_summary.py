"""Numbers and markdown for a scoring run's summary (no Prefect here)."""
from __future__ import annotations

from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.statements import statement


def run_bucket_counts(spec: TaskSpec, run_id: str) -> list[tuple[str, int]]:
    """(bucket, rows) for the rows a run wrote, in the task's bucket order."""
    with reader(spec.warehouse.path) as con:
        counts = dict(con.execute(statement("predictions_bucket_counts_for_run"), {"run_id": run_id}).fetchall())
    return [(b.name, counts.get(b.name, 0)) for b in spec.buckets]


def summary_markdown(spec: TaskSpec, summary: dict, buckets: list[tuple[str, int]]) -> str:
    seconds = summary.get("seconds_scoring") or 0.0
    rate = summary["rows_scored"] / seconds if seconds else 0.0
    lines = [
        f"# calscore run `{summary['run_id']}`",
        "",
        f"task **{spec.name}** (task_version `{spec.task_version}`), "
        f"calibrator `{summary.get('calibrator') or 'none (buckets on raw confidence)'}`",
        "",
        f"- batches written: {summary['batches_done']}, failed: {len(summary['batches_failed'])}",
        f"- rows scored: {summary['rows_scored']}, quarantined: {summary['rows_quarantined']}",
        f"- throughput: {rate:.1f} rows/s over {seconds:.1f} s of scoring",
        "",
        "| bucket | rows |",
        "| --- | ---: |",
        *[f"| {name} | {n} |" for name, n in buckets],
    ]
    for error in summary["batches_failed"]:
        lines.append(f"\n**failed batch**: {error}")
    return "\n".join(lines) + "\n"
