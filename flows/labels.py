"""Label ingestion flow: import -> validate -> idempotent upsert -> maybe trigger recalibration.

In local mode the recalibration flow is called directly. When the task's
recalibration deployment exists (deployments are served, `calscore serve`), an
event is emitted instead and that deployment's trigger runs it.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound

from calscore.jobs.labels.importing import import_labels, new_labels_since_last_fit, read_label_file, read_label_table
from calscore.flows.failures import fails_cleanly
from calscore.flows.run_names import run_name
from calscore.jobs.spec import load_spec

LABELS_IMPORTED = "calscore.labels.imported"


def resource_id(task_name: str) -> str:
    return f"calscore.task.{task_name}"


def recalibration_deployment_name(task_name: str) -> str:
    return f"recalibrate-{task_name}"


def _deployment_served(task_name: str) -> bool:
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(f"calscore-recalibration/{recalibration_deployment_name(task_name)}")
        except ObjectNotFound:
            return False
    return True


@flow(name="calscore-label-ingestion", flow_run_name=run_name)
@fails_cleanly
def ingest_labels(task_path: str, file: str | None = None, table: str | None = None,
                  source: str | None = None, trigger: bool = True) -> dict:
    """Import labels from a file or an analyst's table; trigger recalibration when enough are new."""
    logger = get_run_logger()
    spec = load_spec(task_path)
    data = read_label_file(Path(file)) if file else read_label_table(spec, table)
    report = import_labels(spec, data, source or (Path(file).name if file else table))
    for line in report.lines():
        logger.info(line)
    result = {"report": report.lines(), "inserted": report.inserted, "recalibration": None}
    new = new_labels_since_last_fit(spec)
    threshold = spec.calibration.refit_after_new_labels
    if not trigger or new < threshold:
        result["report"].append(
            f"{new} new label(s) since the last fit; " + (
                "no recalibration (--no-trigger)" if not trigger else
                f"an import that brings them to {threshold} starts a recalibration by itself "
                "([calibration] refit_after_new_labels; --no-trigger prevents it)"))
        logger.info(result["report"][-1])
        return result
    if _deployment_served(spec.name):
        emit_event(LABELS_IMPORTED, resource={"prefect.resource.id": resource_id(spec.name)},
                   payload={"task_path": task_path, "new_labels": new})
        result["recalibration"] = f"{new} new labels: event {LABELS_IMPORTED} emitted for the served deployment"
    else:
        from calscore.flows.recalibration import recalibration

        outcome = recalibration(task_path)
        result["recalibration"] = outcome["decision"]
    return result
