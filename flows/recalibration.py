"""Recalibration flow: labels + stored raw scores -> challenger vs champion -> snapshot.

The run takes the task's recalibration lock, so two recalibrations never
promote at the same time.
"""
from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from calscore.jobs.reports.html_report import report_markdown
from calscore.jobs.calibrators.recalibrate import recalibrate, recalibration_markdown
from calscore.jobs.reports.reliability_diagram import diagram_from_probs
from calscore.jobs.warehouse.runs import finish_run, start_run
from calscore.jobs.spec import load_spec


@flow(name="calscore-recalibration")
def recalibration(task_path: str, wait_seconds: float = 0.0) -> dict:
    """Refit the task's calibrator from its labels and promote it only if it is better."""
    logger = get_run_logger()
    spec = load_spec(task_path)
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "recalibrate", wait_seconds=wait_seconds)
    try:
        result = recalibrate(spec, run_id, diagram=diagram_from_probs)
    except BaseException as exc:
        finish_run(spec.warehouse.path, run_id, "failed", {"error": repr(exc)})
        raise
    finish_run(spec.warehouse.path, run_id, "completed", result)
    result["markdown"] = recalibration_markdown(spec, run_id, result)
    for line in result["markdown"].splitlines():
        if line.strip():
            logger.info(line)
    key = spec.name.lower().replace("_", "-")
    create_markdown_artifact(result["markdown"], key=f"{key}-recalibration", description=f"calscore recalibration {run_id}")
    create_markdown_artifact(report_markdown(spec), key=f"{key}-report", description="calscore report summary")
    return result
