"""Scoring one batch into a staged result (predictions + quarantine + manifest).

    staged = score_batch(spec, ref, run_id, get_scorer(spec), applied)

The batch is streamed: rows that cannot be scored are quarantined with a reason,
the rest go through the task's scorer (`iter_scores`, any backend), the decision
path (`decisions.decide`: calibrate, coverage floor, bucket), and on to disk chunk
by chunk. Scoring never opens the warehouse: rows scored before (same id, same
task_version) are found and quarantined by the writer.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import replace
from functools import lru_cache
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from calscore.calibration_store.apply import logprob_matrix
from calscore.jobs.batches.files import BatchRef, iter_chunks, row_count
from calscore.jobs.batches.quarantine import ENDPOINT_ERROR, QUARANTINE_SCHEMA, split_rows
from calscore.jobs.batches.staged import MANIFEST, StagedBatch, batch_folder, stage_root_for, write_table_atomically
from calscore.jobs.common import filesystems
from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.label_maps import label_map
from calscore.jobs.decisions import AppliedCalibrator, agreement_signal, decide
from calscore.jobs.scoring.registry import make_scorer
from calscore.jobs.scoring.scorer import Scorer
from calscore.jobs.scoring.streaming import iter_scores
from calscore.jobs.spec import TaskSpec, load_spec

CHUNK_ROWS = 2_048
PROGRESS_ROWS = 256  # rows scored between progress updates, whatever the batch size


@lru_cache(maxsize=2)
def _cached_scorer(spec_path: str, task_version: str) -> Scorer:
    spec = load_spec(spec_path)
    return make_scorer(spec.model, spec.prompt, spec.labels)


def get_scorer(spec: TaskSpec) -> Scorer:
    """One loaded model per process and task_version: flow tasks pass paths, not models."""
    return _cached_scorer(str(spec.source_path), spec.task_version)


def _metadata(table: pa.Table, skip: set[str]) -> pa.Array:
    extra = [c for c in table.column_names if c not in skip]
    if not extra:
        return pa.nulls(table.num_rows, pa.string())
    rows = table.select(extra).to_pylist()
    return pa.array([json.dumps(r, default=str) for r in rows], pa.string())


def _label_map_or_null(column: pa.ChunkedArray, labels: list[str]) -> pa.Array:
    """A list<double> score column in label order as MAP(label -> value); null rows stay null."""
    arr = column.combine_chunks()
    values = pc.list_flatten(pc.fill_null(arr, [0.0] * len(labels))).to_numpy(zero_copy_only=False)
    return label_map(values, labels, null_rows=arr.is_null().to_numpy(zero_copy_only=False))


def _split_row_errors(scored: pa.Table, spec: TaskSpec) -> tuple[pa.Table, pa.Table]:
    """(rows scored, quarantine rows with reason endpoint_error and the scorer's message)."""
    failed = pc.is_valid(scored["error"])
    bad = scored.filter(failed)
    quarantine = pa.table({"row_index": bad["row_index"], "row_id": pc.cast(bad[spec.input.id_column], pa.string()),
                           "reason": _constant(ENDPOINT_ERROR, bad.num_rows, pa.string()), "detail": bad["error"]},
                          schema=QUARANTINE_SCHEMA)
    return scored.filter(pc.invert(failed)), quarantine


def _constant(value, n: int, type_: pa.DataType) -> pa.Array:
    return pa.array([value] * n, type_)


def _prediction_rows(scored: pa.Table, spec: TaskSpec, ref: BatchRef, run_id: str,
                     applied: AppliedCalibrator | None) -> pa.Table:
    """One warehouse row per scored input row: ids, text, raw scores, the decision, metadata."""
    cols = spec.input
    n = scored.num_rows
    segment = (
        pc.cast(scored[cols.segment_column], pa.string())
        if cols.segment_column and cols.segment_column in scored.column_names
        else pa.nulls(n, pa.string())
    )
    decided = decide(spec, logprob_matrix(scored["label_logprobs"], spec.label_names), scored["coverage"].to_numpy(),
                     applied, agreement_signal(spec, scored))
    score_columns = {f for f in scored.column_names if f not in (cols.id_column, cols.text_column, "row_index")}
    return pa.table(
        {
            "task_version": _constant(spec.task_version, n, pa.string()),
            "row_id": pc.cast(scored[cols.id_column], pa.string()),
            "task_name": _constant(spec.name, n, pa.string()),
            "run_id": _constant(run_id, n, pa.string()),
            "batch_uri": _constant(ref.key, n, pa.string()),
            "batch_hash": _constant(ref.content_hash, n, pa.string()),
            "model": _constant(spec.model.describe(), n, pa.string()),
            "text": scored[cols.text_column],
            "label_logprobs": _label_map_or_null(scored["label_logprobs"], spec.label_names),
            "unobserved_labels": scored["unobserved_labels"],
            "coverage": scored["coverage"],
            "coverage_is_lower_bound": scored["coverage_is_lower_bound"],
            "total_probability": scored["total_probability"],
            "raw_label": scored["raw_label"],
            "raw_confidence": scored["raw_confidence"],
            "truncated": scored["truncated"],
            "agreement": _label_map_or_null(scored["agreement"], spec.label_names),
            "samples": scored["samples"],
            "calibrator_version": _constant(decided.calibrator_version, n, pa.string()),
            "label": pa.array(decided.label, pa.string()),
            "confidence": pa.array(decided.confidence, pa.float64()) if decided.confidence is not None
            else pa.nulls(n, pa.float64()),
            "calibrated_probs": label_map(decided.probs, spec.label_names, n),
            "bucket": pa.array(decided.bucket, pa.string()),
            "bucket_basis": _constant(decided.basis, n, pa.string()),
            "bucket_reason": pa.array(decided.reason, pa.string()),
            "segment": segment,
            "metadata": _metadata(scored, score_columns | {cols.id_column, cols.text_column, cols.segment_column,
                                                           "row_index"}),
            "scored_at": _constant(utcnow(), n, pa.timestamp("us", tz="UTC")),
            "row_index": scored["row_index"],
        }
    )


def _stage_part(spec: TaskSpec, ref: BatchRef, run_id: str, scorer: Scorer, applied: AppliedCalibrator | None,
                staged: StagedBatch, part: str, on_rows: Callable[[int], None], valid: pa.Table,
                bad: pa.Table) -> dict:
    """Score one part's valid rows PROGRESS_ROWS at a time (`on_rows(rows of the part handled)` after each)
    and write its files; its counts file, written last, completes it."""
    rows_in = valid.num_rows + bad.num_rows
    handled = bad.num_rows  # quarantined before scoring
    predictions = []
    windows = valid.to_batches(max_chunksize=PROGRESS_ROWS)
    for scored in iter_scores(scorer, windows, spec.input.text_column, window_rows=PROGRESS_ROWS):
        handled += scored.num_rows
        scored, failed = _split_row_errors(scored, spec)
        bad = pa.concat_tables([bad, failed])
        predictions.append(_prediction_rows(scored, spec, ref, run_id, applied))
        on_rows(handled)
    rows_scored = sum(rows.num_rows for rows in predictions)
    if predictions:
        write_table_atomically(pa.concat_tables(predictions), staged.part_files(part, "predictions"))
    write_table_atomically(bad, staged.part_files(part, "quarantine"))
    counts = {"rows_in": rows_in, "rows_scored": rows_scored, "rows_quarantined": bad.num_rows,
              "worker": staged.worker}  # which process staged this part (provenance; kill tests find it here)
    fs, path = filesystems.resolve(filesystems.join(staged.folder, f"{part}.json"))
    filesystems.write_text_atomically(fs, path, json.dumps(counts))
    return counts


def _usage(scorer: Scorer) -> dict:
    """What an endpoint scorer has paid so far (requests, tokens, ...); nothing for local models."""
    usage = getattr(scorer, "usage", None)
    return dict(usage()) if callable(usage) else {}


def _usage_since(scorer: Scorer, before: dict) -> dict:
    """The part of the scorer's usage this batch caused (numbers only)."""
    now = _usage(scorer)
    return {k: v - before.get(k, 0) for k, v in now.items() if isinstance(v, (int, float))}


def score_batch(
    spec: TaskSpec,
    ref: BatchRef,
    run_id: str,
    scorer: Scorer,
    applied: AppliedCalibrator | None,
    stage_root: str | None = None,
    on_chunk=None,
    worker: dict | None = None,
) -> StagedBatch:
    """Score one batch into staged parts; return its manifest.

    The batch is read CHUNK_ROWS rows at a time (memory flat in its size), and each chunk
    is staged as one part. A complete staged result from an earlier attempt with the same
    calibrator is reused as is; an interrupted one keeps its complete parts and scores only
    the rest. `on_chunk(rows_done, rows_total)` is called every PROGRESS_ROWS rows scored (progress)
    and when a part is complete (kill tests; a call inside a part never reaches its end). A file whose
    data cannot be decoded raises BatchReadError (that batch fails alone).
    """
    folder = batch_folder(stage_root or stage_root_for(spec), ref, spec.task_version,
                          applied.version if applied else "raw")
    fs, folder_path = filesystems.resolve(folder)
    if filesystems.exists(fs, filesystems.join(folder_path, MANIFEST)):
        return StagedBatch.read(filesystems.join(folder, MANIFEST))
    fs.create_dir(folder_path, recursive=True)
    started = time.perf_counter()
    staged = StagedBatch(ref.key, ref.content_hash, spec.task_version, run_id, folder, [], 0, 0, 0, 0.0,
                         {"host": socket.gethostname(), "pid": os.getpid(), **(worker or {})})
    totals = {"rows_in": 0, "rows_scored": 0, "rows_quarantined": 0}
    usage_before = _usage(scorer)
    seen: set[str] = set()  # ids met in earlier parts (rebuilt from the input when a part is reused)
    total = row_count(ref)
    on_chunk = on_chunk or (lambda done, rows_total: None)
    for index, (offset, chunk) in enumerate(iter_chunks(ref, CHUNK_ROWS)):
        part = f"part-{index:05d}"
        valid, bad = split_rows(chunk, offset, spec.input, seen)
        done = filesystems.join(folder_path, f"{part}.json")

        def within_part(handled: int, before: int = totals["rows_in"], size: int = chunk.num_rows) -> None:
            if handled < size:  # the part's end is reported once its files are written
                on_chunk(before + handled, total)

        if filesystems.exists(fs, done):
            counts = json.loads(filesystems.read_text(fs, done))
        else:
            counts = _stage_part(spec, ref, run_id, scorer, applied, staged, part, within_part, valid, bad)
        staged.parts.append(part)
        totals = {k: totals[k] + counts[k] for k in totals}  # per-part worker info stays in the part file
        on_chunk(totals["rows_in"], total)
    staged = replace(staged, seconds=round(time.perf_counter() - started, 3), usage=_usage_since(scorer, usage_before),
                     **totals)
    staged.write_manifest()
    return staged
