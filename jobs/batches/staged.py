"""Staged results: what scoring one batch hands to the single writer.

A staged result is a predictions Parquet file, a quarantine Parquet file and a
JSON manifest written last, atomically: a result is complete only when its
manifest exists, so a crash mid-batch leaves nothing a writer would load, and
batches can fan out to many workers that all hand their staged files to one writer.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calscore.jobs.batches.files import BatchRef
from calscore.jobs.spec import TaskSpec


@dataclass(frozen=True)
class StagedBatch:
    key: str  # the batch key (see batches.files.BatchRef)
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

    def write_manifest(self) -> None:
        """Write the manifest atomically: from now on the result is complete."""
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, self.manifest_path)


def stage_dir_for(spec: TaskSpec) -> Path:
    """Staged results live beside the warehouse file."""
    return spec.warehouse.path.parent / "staging" / spec.name


def manifest_path(stage_dir: Path, ref: BatchRef, task_version: str, calibrator: str) -> Path:
    return stage_dir / f"{ref.content_hash[:16]}-{task_version}-{calibrator[:16]}.manifest.json"


def atomic_write_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
