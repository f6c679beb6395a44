"""Scoring flows: the nightly run (new batches) and the explicit rescore (backfill).

The flows only orchestrate `jobs/`: tasks take paths, keys and the champion's JSON
document, never models or tables, and never open the warehouse; Prefect's input-hash
cache is off (a re-run must look at the ledger, not at a cache). A run writes every
good batch; a batch that cannot be read or scored fails alone (recorded in the ledger
with its error), and a run with failed batches ends Failed, listing them.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.exceptions import TerminationSignal
from prefect.events import emit_event
from prefect.states import Completed, Failed

from calscore.calibration_store.document import canonical_json
from calscore.flows.events import HEALTH_WARNING, resource_id
from calscore.flows.failures import BatchesFailed, fails_cleanly
from calscore.flows.progress import batch_progress
from calscore.flows.run_names import run_name
from calscore.flows.summary import publish_summary
from calscore.jobs.batches.files import BatchReadError, BatchRef, BatchSchemaError, batch_ref, check_schema, discover
from calscore.jobs.batches.stage import get_scorer, score_batch
from calscore.jobs.batches.staged import StagedBatch
from calscore.jobs.calibrators.champion import applied_from_document, champion_document
from calscore.jobs.reports.health import health_checks, health_lines, record_checks
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.spec import TaskSpec, load_spec
from calscore.jobs.warehouse.connection import WarehouseBusy
from calscore.jobs.warehouse.ledger import backfill, pending, record_failed_batch
from calscore.jobs.warehouse.runs import beating, finish_run, run_provenance, start_run
from calscore.jobs.warehouse.writer import write_staged

# What fails one batch and not the run: the file, its data, or scoring its rows.
BATCH_FAILURES = (BatchSchemaError, BatchReadError, ScorerError)


def _transient(task, task_run, state) -> bool:
    """Retry only when the warehouse was busy (an analyst's session held it)."""
    return isinstance(state.result(raise_on_failure=False), WarehouseBusy)


@task(cache_policy=NONE, task_run_name="score {key}")
@fails_cleanly
def score_batch_task(task_path: str, key: str, content_hash: str, run_id: str, calibrator_document: str | None) -> str:
    """Score one batch into a staged result; returns its manifest path."""
    spec = load_spec(task_path)
    staged = score_batch(
        spec, batch_ref(spec.input, key, content_hash), run_id, get_scorer(spec),
        applied_from_document(calibrator_document, spec.task_version), on_chunk=batch_progress(get_run_logger(), key),
    )
    return str(staged.manifest_path)


@task(cache_policy=NONE, retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=_transient,
      task_run_name="write {key}")
def write_batch_task(task_path: str, manifest: str, run_id: str, key: str) -> dict:
    """Load one staged result into DuckDB in one transaction."""
    return write_staged(load_spec(task_path), StagedBatch.read(Path(manifest)), run_id)


def _score_one(task_path: str, spec: TaskSpec, ref: BatchRef, run_id: str, document: str | None, summary: dict) -> None:
    """Score and write one batch; a batch failure is recorded in the ledger and the summary, and the run goes on."""
    logger = get_run_logger()
    try:
        check_schema(ref, spec.input)
        state = score_batch_task(task_path, ref.key, ref.content_hash, run_id, document, return_state=True)
        if state.is_failed():
            raise state.result(raise_on_failure=False)
        manifest = state.result()
    except BATCH_FAILURES as exc:
        logger.error("batch %s failed, nothing of it written: %s", ref.key, exc)
        record_failed_batch(spec, ref, run_id, str(exc))
        summary["batches_failed"].append({"batch": ref.key, "error": str(exc)})
        return
    seconds = StagedBatch.read(Path(manifest)).seconds  # the writer removes the manifest
    written = write_batch_task(task_path, manifest, run_id, ref.key)
    summary["batches_done"] += 1
    summary["rows_scored"] += written["rows_scored"]
    summary["rows_quarantined"] += written["rows_quarantined"]
    summary["seconds_scoring"] += seconds
    logger.info("batch %s: %d scored, %d quarantined", ref.key, written["rows_scored"], written["rows_quarantined"])


def _score_all(task_path: str, spec: TaskSpec, kind: str, find_batches, wait_seconds: float):
    logger = get_run_logger()
    champion = champion_document(spec)
    document = canonical_json(champion) if champion else None
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, kind,
                       provenance=run_provenance(spec), wait_seconds=wait_seconds)
    summary = {"run_id": run_id, "kind": kind, "task": spec.name, "task_version": spec.task_version,
               "calibrator": champion["version"] if champion else None, "batches_done": 0, "batches_failed": [],
               "rows_scored": 0, "rows_quarantined": 0, "seconds_scoring": 0.0, "warnings": []}
    try:
        with beating(spec.warehouse.path, run_id):
            refs = find_batches(summary)
            logger.info("run %s: %d batch(es) to score", run_id, len(refs))
            if refs:
                get_scorer(spec)  # load the model once, here: a model that cannot load fails the run, not each batch
            for ref in refs:
                _score_one(task_path, spec, ref, run_id, document, summary)
    except BaseException as exc:
        stopped = isinstance(exc, (KeyboardInterrupt, TerminationSignal))  # `calscore serve` stopping, Ctrl-C
        finish_run(spec.warehouse.path, run_id, "cancelled" if stopped else "failed", {**summary, "error": str(exc)})
        raise
    warned = _check_health(spec, run_id, summary) if summary["batches_done"] else False
    status = "failed" if summary["batches_failed"] else ("completed_with_warnings" if warned else "completed")
    finish_run(spec.warehouse.path, run_id, status, summary)
    summary["text"] = publish_summary(spec, run_id, summary)
    if summary["batches_failed"]:
        failed = BatchesFailed(summary)
        return Failed(message=str(failed), data=failed)
    if warned:
        return Completed(name="Completed with warnings", message="; ".join(summary["warnings"]), data=summary)
    return summary


def _check_health(spec: TaskSpec, run_id: str, summary: dict) -> bool:
    """Tonight's health checks, recorded; a warning goes to the summary and out as a Prefect event."""
    checks = health_checks(spec, run_id)
    record_checks(spec, run_id, checks)
    summary["health"] = health_lines(checks)
    warnings = [c for c in checks if c.warning]
    summary["warnings"] += [c.detail for c in warnings]
    if warnings:
        get_run_logger().warning("run %s: %d health warning(s): %s", run_id, len(warnings),
                                 "; ".join(c.detail for c in warnings))
        emit_event(HEALTH_WARNING, resource={"prefect.resource.id": resource_id(spec.name)},
                   payload={"run_id": run_id, "task_version": spec.task_version,
                            "warnings": [{"check": c.name, "value": c.value, "reference": c.reference,
                                          "threshold": c.threshold, "detail": c.detail} for c in warnings]})
    return bool(warnings)


def _new_batches(spec: TaskSpec):
    def find(summary: dict) -> list[BatchRef]:
        found = discover(spec.input)
        if not found:
            summary["warnings"].append(f"no Parquet files in [input] location {spec.input.location}")
        return pending(spec, found)

    return find


@flow(name="calscore-nightly-scoring", flow_run_name=run_name)
@fails_cleanly
def nightly_scoring(task_path: str, wait_seconds: float = 0.0) -> dict:
    """Score every batch in the task's input location that the ledger has neither completed nor failed.

    The precision is the task file's `dtype` (part of task_version): stored raw scores
    never mix precisions under one version."""
    spec = load_spec(task_path)
    return _score_all(task_path, spec, "score", _new_batches(spec), wait_seconds)


@flow(name="calscore-rescore", flow_run_name=run_name)
@fails_cleanly
def rescore(task_path: str, since: datetime, wait_seconds: float = 0.0) -> dict:
    """Explicit backfill: score again, under the current task_version, the batches done since `since`."""
    spec = load_spec(task_path)
    return _score_all(task_path, spec, "rescore", lambda summary: backfill(spec, since), wait_seconds)
