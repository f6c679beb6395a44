"""A run's summary: one log line, and the whole summary once as a Prefect Markdown artifact."""
from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from calscore.jobs.reports.run_summary import run_bucket_counts, summary_markdown, summary_text
from calscore.jobs.spec import TaskSpec


def publish_summary(spec: TaskSpec, run_id: str, summary: dict) -> str:
    """Attach the Markdown summary to the flow run, log one line; return the plain-text summary."""
    buckets = run_bucket_counts(spec, run_id)
    create_markdown_artifact(summary_markdown(spec, summary, buckets),
                             key=f"{spec.name.lower().replace('_', '-')}-run-summary", description=f"calscore run {run_id}")
    get_run_logger().info("run %s: %d batch(es) written, %d failed, %d rows scored, %d quarantined (summary artifact)",
                          run_id, summary["batches_done"], len(summary["batches_failed"]), summary["rows_scored"],
                          summary["rows_quarantined"])
    return summary_text(spec, summary, buckets)
