"""A scoring run's summary, as plain text (the console) and as Markdown (the Prefect artifact).

The summary dict is what the nightly flow collects: run_id, calibrator, batches_done,
batches_failed ([{"batch", "error"}]), rows_scored, rows_quarantined, seconds_scoring and
warnings (e.g. an empty input location).
"""
from __future__ import annotations

from calscore.jobs.batches.files import one_line
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.statements import statement


def run_bucket_counts(spec: TaskSpec, run_id: str) -> list[tuple[str, int]]:
    """(bucket, rows) for the rows a run wrote, in the task's bucket order."""
    with reader(spec.warehouse.path) as con:
        counts = dict(con.execute(statement("predictions_bucket_counts_for_run"), {"run_id": run_id}).fetchall())
    return [(b.name, counts.get(b.name, 0)) for b in spec.buckets]


def _facts(spec: TaskSpec, summary: dict) -> list[str]:
    seconds = summary.get("seconds_scoring") or 0.0
    rate = summary["rows_scored"] / seconds if seconds else 0.0
    return [
        f"task {spec.name} (task_version {spec.task_version}), "
        f"calibrator {summary.get('calibrator') or 'none (buckets on raw confidence)'}",
        f"batches written: {summary['batches_done']}, failed: {len(summary['batches_failed'])}",
        f"rows scored: {summary['rows_scored']}, quarantined: {summary['rows_quarantined']}",
        f"throughput: {rate:.1f} rows/s over {seconds:.1f} s of scoring",
        *(["endpoint usage: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["usage"].items()))]
          if summary.get("usage") else []),
    ]


def summary_text(spec: TaskSpec, summary: dict, buckets: list[tuple[str, int]]) -> str:
    """Plain text for the console."""
    width = max([len(name) for name, _ in buckets] + [6])
    lines = [f"run {summary['run_id']}", *_facts(spec, summary), "", f"{'bucket':<{width}}  rows"]
    lines += [f"{name:<{width}}  {n:>4}" for name, n in buckets]
    lines += [f"failed batch {f['batch']}: {f['error']}" for f in summary["batches_failed"]]
    lines += [f"warning: {w}" for w in summary.get("warnings", [])]
    lines += [line for line in summary.get("health", []) if not line.startswith("health warning")]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text that stays in its Markdown table cell: one line, its pipes escaped."""
    return one_line(text).replace("|", "\\|")


def summary_markdown(spec: TaskSpec, summary: dict, buckets: list[tuple[str, int]]) -> str:
    """Markdown for the flow run's artifact."""
    lines = [f"# calscore run `{summary['run_id']}`", "", *[f"- {fact}" for fact in _facts(spec, summary)], "",
             "| bucket | rows |", "| --- | ---: |", *[f"| {name} | {n} |" for name, n in buckets]]
    if summary["batches_failed"]:
        lines += ["", "## Failed batches", "", "| batch | error |", "| --- | --- |"]
        lines += [f"| `{_cell(f['batch'])}` | {_cell(f['error'])} |" for f in summary["batches_failed"]]
    lines += ["", *[f"**warning**: {w}" for w in summary.get("warnings", [])]]
    lines += [line for line in summary.get("health", []) if not line.startswith("health warning")]
    return "\n".join(lines).rstrip() + "\n"
