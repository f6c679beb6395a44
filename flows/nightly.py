"""Scoring flows: the nightly run (new batches) and the explicit rescore (backfill).

The flows only orchestrate `jobs/`: tasks take paths and ids, never models or
tables, and Prefect's input-hash cache is off (a re-run must look at the ledger,
not at a cache).
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from calscore.flows.summary import publish_summary
from calscore.jobs.batches.files import BatchRef, BatchSchemaError, check_schema, discover
from calscore.jobs.batches.stage import get_scorer, score_batch
from calscore.jobs.batches.staged import StagedBatch
from calscore.jobs.calibrators.champion import applied_calibrator, champion_version
from calscore.jobs.spec import TaskSpec, load_spec
from calscore.jobs.warehouse.connection import WarehouseBusy
from calscore.jobs.warehouse.ledger import backfill, pending, record_failed_batch
from calscore.jobs.warehouse.runs import finish_run, run_provenance, start_run
from calscore.jobs.warehouse.writer import write_staged


def _transient(task, task_run, state) -> bool:
    """Retry only when the warehouse was busy (an analyst's session held it)."""
    return isinstance(state.result(raise_on_failure=False), WarehouseBusy)


@task(cache_policy=NONE)
def score_batch_task(task_path: str, uri: str, content_hash: str, run_id: str, calibrator: str | None) -> str:
    """Score one batch into a staged result; returns its manifest path."""
    spec = load_spec(task_path)
    staged = score_batch(
        spec, BatchRef(uri, content_hash), run_id, get_scorer(spec), applied_calibrator(spec, calibrator)
    )
    return str(staged.manifest_path)


@task(cache_policy=NONE, retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=_transient)
def write_batch_task(task_path: str, manifest: str, run_id: str) -> dict:
    """Load one staged result into DuckDB in one transaction."""
    return write_staged(load_spec(task_path), StagedBatch.read(Path(manifest)), run_id)


def _score_all(task_path: str, spec: TaskSpec, kind: str, find_batches, wait_seconds: float) -> dict:
    logger = get_run_logger()
    calibrator = champion_version(spec)
    run_id = start_run(
        spec.warehouse.path, spec.name, spec.task_version, kind,
        provenance=run_provenance(spec), wait_seconds=wait_seconds,
    )
    summary = {"run_id": run_id, "kind": kind, "task": spec.name, "task_version": spec.task_version,
               "calibrator": calibrator, "batches_done": 0, "batches_failed": [], "rows_scored": 0,
               "rows_quarantined": 0, "seconds_scoring": 0.0}
    try:
        refs = find_batches()
        logger.info("run %s: %d batch(es) to score", run_id, len(refs))
        for ref in refs:
            try:
                check_schema(ref, spec.input)
            except BatchSchemaError as exc:
                logger.error("batch failed, nothing of it written: %s", exc)
                record_failed_batch(spec, ref, run_id, str(exc))
                summary["batches_failed"].append(str(exc))
                continue
            manifest = score_batch_task(task_path, ref.uri, ref.content_hash, run_id, calibrator)
            seconds = StagedBatch.read(Path(manifest)).seconds  # the writer removes the manifest
            written = write_batch_task(task_path, manifest, run_id)
            summary["batches_done"] += 1
            summary["rows_scored"] += written["rows_scored"]
            summary["rows_quarantined"] += written["rows_quarantined"]
            summary["seconds_scoring"] += seconds
            logger.info("batch %s: %d scored, %d quarantined", ref.uri, written["rows_scored"], written["rows_quarantined"])
    except BaseException as exc:
        finish_run(spec.warehouse.path, run_id, "failed", {**summary, "error": repr(exc)})
        raise
    finish_run(spec.warehouse.path, run_id, "completed", summary)
    summary["markdown"] = publish_summary(spec, run_id, summary)
    return summary


@flow(name="calscore-nightly-scoring")
def nightly_scoring(task_path: str, wait_seconds: float = 0.0) -> dict:
    """Score every batch in the task's input location that the ledger has not completed.

    The precision is the task file's `dtype` (part of task_version): stored raw scores
    never mix precisions under one version."""
    spec = load_spec(task_path)
    return _score_all(task_path, spec, "score", lambda: pending(spec, discover(spec.input.location)), wait_seconds)


@flow(name="calscore-rescore")
def rescore(task_path: str, since: datetime, wait_seconds: float = 0.0) -> dict:
    """Explicit backfill: score again, under the current task_version, the batches done since `since`."""
    spec = load_spec(task_path)
    return _score_all(task_path, spec, "rescore", lambda: backfill(spec, since), wait_seconds)
