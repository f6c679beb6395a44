"""Scoring one batch into a staged Parquet result (predictions + quarantine).

Scoring and writing are separate steps: this module never touches the warehouse
for writing. A staged result is complete only when its manifest exists (written
last, atomically), so a crash mid-batch leaves nothing a writer would load, and
batches can fan out to many workers that all hand their staged files to one
writer.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from calscore.calibration_store.apply import logprob_matrix
from calscore.jobs.batches.files import QUARANTINE_SCHEMA, BatchRef, iter_chunks, split_rows
from calscore.jobs.decisions import assign_buckets
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader, utcnow

CHUNK_ROWS = 2_048
# A token is rarely longer than this many characters: cutting the raw string to
# max_input_tokens * this keeps a huge text from costing minutes of tokenization,
# while the engine still truncates exactly, in tokens.
CHARS_PER_TOKEN_CAP = 32


@dataclass(frozen=True)
class StagedBatch:
    uri: str
    content_hash: str
    task_version: str
    run_id: str
    predictions_path: str
    quarantine_path: str
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    seconds: float

    @property
    def manifest_path(self) -> Path:
        return Path(self.quarantine_path.removesuffix(".quarantine.parquet") + ".manifest.json")

    @classmethod
    def read(cls, manifest: Path) -> "StagedBatch":
        return cls(**json.loads(manifest.read_text()))


@dataclass(frozen=True)
class AppliedCalibrator:
    """The champion used for a run: its version id and a predict_proba callable."""

    version: str
    calibrator: object


@lru_cache(maxsize=2)
def _cached_scorer(spec_path: str, task_version: str):
    from calscore.jobs.scoring.engine import FirstTokenScorer
    from calscore.jobs.scoring.model_loading import load_model
    from calscore.jobs.spec import load_spec

    spec = load_spec(spec_path)
    return FirstTokenScorer(load_model(spec.model), spec)


def get_scorer(spec: TaskSpec):
    """One loaded model per process and task: flow tasks pass paths, not models."""
    return _cached_scorer(str(spec.source_path), spec.task_version)


def run_provenance(spec: TaskSpec) -> dict:
    """What a run records about the model it scores with, resolved without loading it
    (a night with no new batch never pays for a model load)."""
    from calscore.jobs.scoring.fingerprint import model_fingerprint
    from calscore.jobs.scoring.model_loading import resolve_device, resolve_dtype

    device = resolve_device(spec.model.device)
    return {
        "model": spec.model.describe(),
        "model_fingerprint": model_fingerprint(spec.model),
        "dtype": resolve_dtype(spec.model.dtype, device),
        "device": device,
        "labels": spec.label_names,
    }


def _scored_ids(spec: TaskSpec, ids: list[str]) -> set[str]:
    """Ids of this batch already scored for this task_version (a short read)."""
    if not spec.warehouse.path.exists() or not ids:
        return set()
    with reader(spec.warehouse.path) as con:
        rows = con.execute(
            "SELECT row_id FROM predictions WHERE task_version = ? AND row_id IN (SELECT unnest(?))",
            [spec.task_version, ids],
        ).fetchall()
    return {r[0] for r in rows}


def _cut(texts: list[str], limit: int, side: str) -> list[str]:
    return [t if len(t) <= limit else (t[:limit] if side == "right" else t[-limit:]) for t in texts]


def _metadata(table: pa.Table, skip: set[str]) -> pa.Array:
    extra = [c for c in table.column_names if c not in skip]
    if not extra:
        return pa.nulls(table.num_rows, pa.string())
    rows = table.select(extra).to_pylist()
    return pa.array([json.dumps(r, default=str) for r in rows], pa.string())


def _decide(scores: pa.Table, spec: TaskSpec, applied: AppliedCalibrator | None) -> dict[str, pa.Array]:
    """Calibrated label/confidence (when a champion exists) and the bucket."""
    logprobs = logprob_matrix(scores["label_logprobs"], spec.label_names)
    coverage = scores["coverage"].to_numpy()
    labels = np.array(spec.label_names, dtype=object)
    if applied is None:
        confidence = None
        label = scores["raw_label"]
        basis_conf = scores["raw_confidence"].to_numpy()
        basis = "raw"
    else:
        probs = applied.calibrator.predict_proba(logprobs)
        label = pa.array(labels[probs.argmax(axis=1)], pa.string())
        confidence = probs.max(axis=1)
        basis_conf = confidence
        basis = "calibrated"
    bucket, reason = assign_buckets(basis_conf, coverage, spec.buckets, spec.coverage_floor)
    n = scores.num_rows
    return {
        "calibrator_version": pa.array([applied.version if applied else None] * n, pa.string()),
        "label": label,
        "confidence": pa.array(confidence, pa.float64()) if confidence is not None else pa.nulls(n, pa.float64()),
        "bucket": pa.array(bucket, pa.string()),
        "bucket_basis": pa.array([basis] * n, pa.string()),
        "bucket_reason": pa.array(reason, pa.string()),
    }


def _label_map(scores: pa.Table, labels: list[str]) -> pa.Array:
    """The engine's K log-probabilities per row as MAP(label -> log p), built columnar."""
    n, k = scores.num_rows, len(labels)
    values = pc.list_flatten(scores["label_logprobs"]).combine_chunks()
    offsets = pa.array(np.arange(n + 1) * k, pa.int32())
    return pa.MapArray.from_arrays(offsets, pa.array(labels * n, pa.string()), values)


def _prediction_rows(
    valid: pa.Table, scores: pa.Table, spec: TaskSpec, ref: BatchRef, run_id: str, model: str,
    applied: AppliedCalibrator | None, cut: pa.Array,
) -> pa.Table:
    cols = spec.input
    n = valid.num_rows
    segment = (
        pc.cast(valid[cols.segment_column], pa.string())
        if cols.segment_column and cols.segment_column in valid.column_names
        else pa.nulls(n, pa.string())
    )
    decided = _decide(scores, spec, applied)
    now = utcnow()
    return pa.table(
        {
            "task_version": pa.array([spec.task_version] * n, pa.string()),
            "row_id": pc.cast(valid[cols.id_column], pa.string()),
            "task_name": pa.array([spec.name] * n, pa.string()),
            "run_id": pa.array([run_id] * n, pa.string()),
            "batch_uri": pa.array([ref.uri] * n, pa.string()),
            "batch_hash": pa.array([ref.content_hash] * n, pa.string()),
            "model": pa.array([model] * n, pa.string()),
            "text": valid[cols.text_column],
            "label_logprobs": _label_map(scores, spec.label_names),
            "coverage": scores["coverage"],
            "total_probability": scores["total_probability"],
            "raw_label": scores["raw_label"],
            "raw_confidence": scores["raw_confidence"],
            "truncated": pc.or_(scores["truncated"], cut),
            **decided,
            "segment": segment,
            "metadata": _metadata(valid, {cols.id_column, cols.text_column, cols.segment_column, "row_index"}),
            "scored_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
            "row_index": valid["row_index"],
        }
    )


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def stage_dir_for(spec: TaskSpec) -> Path:
    """Staged results live beside the warehouse file."""
    return spec.warehouse.path.parent / "staging" / spec.name


def manifest_path(stage_dir: Path, ref: BatchRef, task_version: str, calibrator: str) -> Path:
    return stage_dir / f"{ref.content_hash[:16]}-{task_version}-{calibrator[:16]}.manifest.json"


def score_batch(
    spec: TaskSpec,
    ref: BatchRef,
    run_id: str,
    scorer,
    applied: AppliedCalibrator | None,
    stage_dir: Path | None = None,
    on_chunk=None,
) -> StagedBatch:
    """Score one batch into staged Parquet files; return its manifest.

    A complete staged result from an earlier, crashed attempt with the same
    calibrator is reused as is. Predictions stream to disk chunk by chunk.
    `on_chunk(rows_done)` is called after each scored chunk (progress, kill tests).
    """
    stage_dir = Path(stage_dir or stage_dir_for(spec))
    stage_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest_path(stage_dir, ref, spec.task_version, applied.version if applied else "raw")
    if manifest.exists():
        return StagedBatch.read(manifest)
    started = time.perf_counter()
    stem = manifest.name.removesuffix(".manifest.json")
    pred_path, quar_path = stage_dir / f"{stem}.predictions.parquet", stage_dir / f"{stem}.quarantine.parquet"

    ids = pc.cast(pq.read_table(ref.path, columns=[spec.input.id_column])[spec.input.id_column], pa.string())
    scored = _scored_ids(spec, [i for i in ids.to_pylist() if i is not None])
    seen: set[str] = set()
    limit = spec.prompt.max_input_tokens * CHARS_PER_TOKEN_CAP
    quarantined, rows_in, rows_scored, writer = [], 0, 0, None
    tmp_pred = pred_path.with_suffix(".parquet.tmp")
    try:
        for offset, chunk in iter_chunks(ref, CHUNK_ROWS):
            rows_in += chunk.num_rows
            valid, bad = split_rows(chunk, offset, spec.input, seen, scored)
            quarantined.append(bad)
            if valid.num_rows:
                texts = valid[spec.input.text_column].to_pylist()
                cut = pa.array([len(t) > limit for t in texts])
                scores = scorer.score(_cut(texts, limit, spec.prompt.truncation_side))
                rows = _prediction_rows(valid, scores, spec, ref, run_id, spec.model.describe(), applied, cut)
                writer = writer or pq.ParquetWriter(tmp_pred, rows.schema)
                writer.write_table(rows)
                rows_scored += rows.num_rows
            if on_chunk:
                on_chunk(offset + chunk.num_rows)
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        os.replace(tmp_pred, pred_path)
    quarantine = pa.concat_tables(quarantined) if quarantined else QUARANTINE_SCHEMA.empty_table()
    _atomic_write_table(quarantine, quar_path)
    staged = StagedBatch(
        uri=ref.uri,
        content_hash=ref.content_hash,
        task_version=spec.task_version,
        run_id=run_id,
        predictions_path=str(pred_path) if rows_scored else "",
        quarantine_path=str(quar_path),
        rows_in=rows_in,
        rows_scored=rows_scored,
        rows_quarantined=quarantine.num_rows,
        seconds=round(time.perf_counter() - started, 3),
    )
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(staged)))
    os.replace(tmp, manifest)
    return staged
