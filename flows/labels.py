"""Label ingestion flow: import -> validate -> idempotent upsert -> maybe trigger recalibration.

In local mode the recalibration flow is called directly. When the task's
recalibration deployment exists (deployments are served, `calscore serve`), an
event is emitted instead and that deployment's trigger runs it.
"""
from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound

from calscore.jobs.labels.ingest import ingest
from calscore.flows.events import LABELS_IMPORTED, resource_id
from calscore.flows.failures import fails_cleanly
from calscore.flows.run_names import run_name
from calscore.jobs.spec import load_spec

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
                  source: str | None = None, trigger: bool = True, design: str | None = None) -> dict:
    """Import labels from a file or an analyst's table (with their sampling design: random, audit or
    convenience); trigger recalibration when enough are new."""
    logger = get_run_logger()
    spec = load_spec(task_path)
    result = ingest(spec, file, table, source, trigger, design=design)
    for line in result["report"]:
        logger.info(line)
    new = result["new_labels"]
    if new is None:
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
