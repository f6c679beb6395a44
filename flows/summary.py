"""A run's summary, as log lines and as a Prefect markdown artifact."""
from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from calscore.jobs.reports.run_summary import run_bucket_counts, summary_markdown
from calscore.jobs.spec import TaskSpec


def publish_summary(spec: TaskSpec, run_id: str, summary: dict) -> str:
    """Log the summary and attach it to the flow run; return the markdown."""
    buckets = run_bucket_counts(spec, run_id)
    markdown = summary_markdown(spec, summary, buckets)
    logger = get_run_logger()
    for line in markdown.splitlines():
        if line.strip():
            logger.info(line)
    create_markdown_artifact(markdown, key=f"{spec.name.lower().replace('_', '-')}-run-summary", description=f"calscore run {run_id}")
    return markdown
