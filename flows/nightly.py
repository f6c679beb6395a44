"""Scoring flows: the nightly run (new batches) and the explicit rescore (backfill).

The flows only orchestrate `jobs/`: tasks take paths, keys and the champion's JSON
document, never models or tables, and never open the warehouse; Prefect's input-hash
cache is off (a re-run must look at the ledger, not at a cache). A run writes every
good batch; a batch that cannot be read or scored fails alone (recorded in the ledger
with its error), and a run with failed batches ends Failed, listing them.
"""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timezone

from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.cache_policies import NONE
from prefect.exceptions import TerminationSignal
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from calscore.calibration_store.document import canonical_json
from calscore.flows.events import HEALTH_WARNING, resource_id
from calscore.flows.failures import BatchesFailed, batches_failed_message, fails_cleanly
from calscore.flows.progress import batch_progress
from calscore.flows.runners import resources_for, task_runner_for, uses_ray, worker_identity
from calscore.flows.run_names import run_name
from calscore.flows.summary import publish_summary
from calscore.jobs.batches.files import (
    BatchReadError,
    BatchRef,
    BatchSchemaError,
    batch_ref,
    check_schema,
    discover,
    one_line,
    schema_warnings,
)
from calscore.jobs.batches.stage import get_scorer, score_batch
from calscore.jobs.batches.staged import StagedBatch
from calscore.jobs.calibrators.champion import applied_from_document, champion_document
from calscore.jobs.reports.health import health_checks, health_lines, record_checks
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.model_loading import ModelLoadError
from calscore.jobs.spec import TaskSpec, check_answers, load_spec
from calscore.jobs.warehouse.connection import WarehouseBusy
from calscore.jobs.warehouse.ledger import backfill, failed_earlier, pending, record_failed_batch
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
    """Score one batch into a staged result (on whatever worker runs it); returns its manifest's location."""
    spec = load_spec(task_path)
    scorer = get_scorer(spec)  # a model load is not scoring time (rows/s)
    with batch_progress(get_run_logger(), key) as on_chunk:
        staged = score_batch(
            spec, batch_ref(spec.input, key, content_hash), run_id, scorer,
            applied_from_document(calibrator_document, spec.task_version), on_chunk=on_chunk, worker=worker_identity(),
        )
    return staged.manifest


@task(cache_policy=NONE, retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=_transient,
      task_run_name="write {key}")
def write_batch_task(task_path: str, manifest: str, run_id: str, key: str) -> dict:
    """Load one staged result into DuckDB in one transaction (always in the flow's process: the single writer)."""
    return write_staged(load_spec(task_path), StagedBatch.read(manifest), run_id)


def _failure(result) -> BaseException | None:
    """The batch failure a scoring task ended with, if any; a model that cannot load is the run's failure."""
    if isinstance(result, ModelLoadError) or (isinstance(result, BaseException) and not isinstance(result, BATCH_FAILURES)):
        raise result
    return result if isinstance(result, BaseException) else None


@flow(name="calscore-score-batches", flow_run_name="{run_id}")
def score_batches(task_path: str, run_id: str, keys: list[list[str | None]], calibrator_document: str | None,
                  ray_address: str | None = None) -> dict:
    """Fan the batches out, one scoring task each, and write each staged result as soon as it is ready.

    `keys` are [key, content hash, why it cannot be read (None when it can)]. Runs with the task runner
    the task file's [execution] asks for (see flows.runners); the writer is this flow, in one process,
    one DuckDB transaction per batch."""
    logger = get_run_logger()
    spec = load_spec(task_path)
    outcome = {"done": [], "failed": [], "warnings": []}

    def failed(ref: BatchRef, error: BaseException | str) -> None:
        reason = one_line(str(error))
        logger.error("batch %s failed, nothing of it written: %s", ref.key, reason)
        record_failed_batch(spec, ref, run_id, reason)
        outcome["failed"].append({"batch": ref.key, "error": reason})

    futures = {}
    with resources_for(spec, ray_address):
        for key, content_hash, unreadable in keys:
            ref = batch_ref(spec.input, key, content_hash)
            if unreadable:
                failed(ref, unreadable)
                continue
            try:
                schema = check_schema(ref, spec.input)
            except BatchSchemaError as exc:
                failed(ref, exc)
                continue
            for warning in schema_warnings(ref, schema, spec.input):
                logger.warning("batch %s: %s", ref.key, warning)
                outcome["warnings"].append(warning)
            futures[score_batch_task.submit(task_path, key, content_hash, run_id, calibrator_document)] = ref
    for future in as_completed(list(futures)):
        ref = futures[future]
        result = future.result(raise_on_failure=False)
        error = _failure(result)
        if error is not None:
            failed(ref, error)
            continue
        staged = StagedBatch.read(result)
        started = time.perf_counter()
        written = write_batch_task(task_path, result, run_id, ref.key)
        outcome["done"].append({**written, "batch": ref.key, "seconds": staged.seconds, "worker": staged.worker,
                                "usage": staged.usage, "write_seconds": round(time.perf_counter() - started, 3)})
        logger.info("batch %s: %d scored, %d quarantined", ref.key, written["rows_scored"], written["rows_quarantined"])
    if outcome["failed"]:  # the sub-run holding a failed batch is Failed in the UI too, with what it wrote
        return Failed(message=batches_failed_message(outcome["failed"], len(outcome["done"])), data=outcome)
    return outcome


def _outcome(state) -> dict:
    """What the fan-out did, from its final state (Failed when batches failed); a fan-out that failed for
    another reason (a model that cannot load, a bug) fails the run with that error."""
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def logical_night(night: date | None) -> date:
    """The night a run scores for: the one given, else the UTC date this flow run was scheduled for
    (a run that starts late, or past midnight, still belongs to its night)."""
    if night is not None:
        return night
    return flow_run.scheduled_start_time.astimezone(timezone.utc).date()


def _score_all(task_path: str, spec: TaskSpec, kind: str, find_batches, wait_seconds: float,
               ray_address: str | None = None, night: date | None = None):
    logger = get_run_logger()
    check_answers(spec)  # before the lock: a task file scoring would refuse is not a failed run
    night = logical_night(night)
    # the lock first: its writer brings an older schema up to date, and the champion read under it is the one
    # the run applies (a reader before it refused an old schema, and could miss a promotion made meanwhile)
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, kind,
                       provenance=run_provenance(spec), wait_seconds=wait_seconds, night=night)
    summary = {"run_id": run_id, "kind": kind, "task": spec.name, "task_version": spec.task_version,
               "night": night.isoformat(), "calibrator": None, "batches_done": 0, "batches_failed": [],
               "rows_scored": 0, "rows_quarantined": 0, "seconds_scoring": 0.0, "warnings": []}
    try:
        champion = champion_document(spec)
        document = canonical_json(champion) if champion else None
        summary["calibrator"] = champion["version"] if champion else None
        with beating(spec.warehouse.path, run_id):
            refs = find_batches(summary)
            logger.info("run %s: %d batch(es) to score", run_id, len(refs))
            if refs and not uses_ray(spec, ray_address):
                get_scorer(spec)  # load the model once, here: a model that cannot load fails the run, not each batch
            if refs:
                fan_out = score_batches.with_options(task_runner=task_runner_for(spec, ray_address))
                keys = [[r.key, r.content_hash, r.unreadable] for r in refs]
                outcome = _outcome(fan_out(task_path, run_id, keys, document, ray_address, return_state=True))
                summary["batches_failed"] += outcome["failed"]
                summary["batches_done"] += len(outcome["done"])
                summary["warnings"] += outcome["warnings"]
                for done in outcome["done"]:
                    summary["rows_scored"] += done["rows_scored"]
                    summary["rows_quarantined"] += done["rows_quarantined"]
                    summary["seconds_scoring"] += done["seconds"]
                    summary["seconds_writing"] = summary.get("seconds_writing", 0.0) + done["write_seconds"]
                    for key, value in done["usage"].items():  # endpoint requests and tokens paid this run
                        summary.setdefault("usage", {})[key] = summary.get("usage", {}).get(key, 0) + value
                summary["workers"] = sorted({json.dumps(d["worker"], sort_keys=True) for d in outcome["done"]})
                summary["done"] = outcome["done"]
    except BaseException as exc:
        stopped = isinstance(exc, (KeyboardInterrupt, TerminationSignal))  # `calscore serve` stopping, Ctrl-C
        finish_run(spec.warehouse.path, run_id, "cancelled" if stopped else "failed", {**summary, "error": str(exc)})
        raise
    if summary["batches_done"]:
        _check_health(spec, run_id, summary)
    warned = bool(summary["warnings"])  # health, a batch without its segment column, an empty input location
    status = "failed" if summary["batches_failed"] else ("completed_with_warnings" if warned else "completed")
    finish_run(spec.warehouse.path, run_id, status, summary)
    summary["text"] = publish_summary(spec, run_id, summary)
    if summary["batches_failed"]:
        failed = BatchesFailed(summary)
        return Failed(message=str(failed), data=failed)
    if warned:
        return Completed(name="Completed with warnings", message="; ".join(summary["warnings"]), data=summary)
    return summary


def _check_health(spec: TaskSpec, run_id: str, summary: dict) -> None:
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


def _new_batches(spec: TaskSpec):
    def find(summary: dict) -> list[BatchRef]:
        found = discover(spec.input)
        if not found:
            summary["warnings"].append(f"no Parquet files in [input] location {spec.input.location}")
        failed = failed_earlier(spec, found)
        if failed:  # they are not tried again: say so every night, with the way out
            summary["warnings"].append(
                f"{len(failed)} batch(es) failed on an earlier night and stay failed until retried: "
                f"{', '.join(failed)} (why: calscore status; retry: calscore batches retry --task {spec.source_path} "
                "--all)")
        return pending(spec, found)

    return find


@flow(name="calscore-nightly-scoring", flow_run_name=run_name)
@fails_cleanly
def nightly_scoring(task_path: str, wait_seconds: float = 0.0, ray_address: str | None = None,
                    night: date | None = None) -> dict:
    """Score every batch in the task's input location that the ledger has neither completed nor failed.

    The precision is the task file's `dtype` (part of task_version): stored raw scores
    never mix precisions under one version. Its rows belong to `night` (default: the date
    the run was scheduled for)."""
    spec = load_spec(task_path)
    return _score_all(task_path, spec, "score", _new_batches(spec), wait_seconds, ray_address, night)


@flow(name="calscore-rescore", flow_run_name=run_name)
@fails_cleanly
def rescore(task_path: str, since: datetime, wait_seconds: float = 0.0, ray_address: str | None = None,
            night: date | None = None) -> dict:
    """Explicit backfill: score again, under the current task_version, the batches done since `since`."""
    spec = load_spec(task_path)
    return _score_all(task_path, spec, "rescore", lambda summary: backfill(spec, since), wait_seconds, ray_address,
                      night)
