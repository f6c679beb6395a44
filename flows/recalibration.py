"""Recalibration flow: labels + stored raw scores -> challenger vs champion -> snapshot.

The run takes the task's recalibration lock, so two recalibrations never
promote at the same time. The work is `jobs.calibrators.recalibrate.run_recalibration`;
the flow adds the Markdown artifacts.
"""
from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from calscore.flows.failures import fails_cleanly
from calscore.flows.run_names import run_name
from calscore.jobs.calibrators.recalibrate import run_recalibration
from calscore.jobs.reports.html_report import report_markdown
from calscore.jobs.reports.reliability_diagram import snapshot_diagram
from calscore.jobs.spec import load_spec


@flow(name="calscore-recalibration", flow_run_name=run_name)
@fails_cleanly
def recalibration(task_path: str, wait_seconds: float = 0.0) -> dict:
    """Refit the task's calibrator from its labels and promote it only if it is better."""
    spec = load_spec(task_path)
    result = run_recalibration(spec, wait_seconds, diagram=snapshot_diagram(spec))
    get_run_logger().info("recalibration %s: %s (Markdown artifact)", result["run_id"], result["decision"])
    key = spec.name.lower().replace("_", "-")
    create_markdown_artifact(result["markdown"], key=f"{key}-recalibration",
                             description=f"calscore recalibration {result['run_id']}")
    create_markdown_artifact(report_markdown(spec), key=f"{key}-report", description="calscore report summary")
    return result
