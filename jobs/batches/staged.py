"""Staged results: what scoring one batch hands to the single writer.

A batch is staged in its own folder (a path or a URI `pyarrow.fs` resolves, so workers
on other machines can stage where the writer reads), in parts of at most CHUNK_ROWS
input rows: `part-NNNNN.predictions.parquet` (when the part has scored rows),
`part-NNNNN.quarantine.parquet`, and `part-NNNNN.json` with the part's counts, written
last. A part is complete only when its `.json` exists: a worker that dies mid-batch
loses at most the part it was scoring, and the retry reuses the complete ones. The
batch's `manifest.json`, written last of all, makes the staged result complete.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from calscore.jobs.batches.files import BatchRef
from calscore.jobs.common import filesystems
from calscore.jobs.spec import TaskSpec

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StagedBatch:
    key: str  # the batch key (see batches.files.BatchRef)
    content_hash: str
    task_version: str
    run_id: str
    folder: str  # path or URI of the batch's staging folder
    parts: list[str]  # part names, in input order
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    seconds: float
    worker: dict = field(default_factory=dict)  # who scored it: host, pid (and the Ray node when there is one)
    usage: dict = field(default_factory=dict)  # what an endpoint cost for this batch: requests, tokens, ...

    @property
    def manifest(self) -> str:
        return filesystems.join(self.folder, MANIFEST)

    @classmethod
    def read(cls, manifest: str) -> "StagedBatch":
        fs, path = filesystems.resolve(manifest)
        return cls(**json.loads(filesystems.read_text(fs, path)))

    def write_manifest(self) -> None:
        """Write the manifest atomically: from now on the result is complete."""
        fs, path = filesystems.resolve(self.manifest)
        filesystems.write_text_atomically(fs, path, json.dumps(asdict(self)))

    def part_files(self, part: str, kind: str) -> str:
        return filesystems.join(self.folder, f"{part}.{kind}.parquet")

    def read_part(self, part: str, kind: str, columns: list[str] | None = None) -> pa.Table | None:
        """A part's `predictions` or `quarantine` table (or these `columns` of it), None when the part has none."""
        fs, path = filesystems.resolve(self.part_files(part, kind))
        return pq.read_table(path, columns=columns, filesystem=fs) if filesystems.exists(fs, path) else None

    def keys(self) -> pa.Table:
        """task_version and row_id of every staged prediction, all parts (ids only: small whatever the batch)."""
        names = ["task_version", "row_id"]
        parts = [t for part in self.parts if (t := self.read_part(part, "predictions", names)) is not None]
        return pa.concat_tables(parts) if parts else pa.table({n: pa.array([], pa.string()) for n in names})

    def remove(self) -> None:
        """Delete the staged files, manifest first (without it nothing is loaded again)."""
        fs, folder = filesystems.resolve(self.folder)
        fs.delete_file(filesystems.join(folder, MANIFEST))
        fs.delete_dir(folder)


def stage_root_for(spec: TaskSpec) -> str:
    """Where a task stages its batches: `[execution] staging`, else beside the warehouse file."""
    return spec.execution.staging or str(spec.warehouse.path.parent / "staging" / spec.name)


def batch_folder(stage_root: str, ref: BatchRef, task_version: str, calibrator: str) -> str:
    return filesystems.join(stage_root, f"{ref.content_hash[:16]}-{task_version}-{calibrator[:16]}")


def write_table_atomically(table: pa.Table, location: str) -> None:
    fs, path = filesystems.resolve(location)
    pq.write_table(table, path + ".tmp", filesystem=fs)
    fs.move(path + ".tmp", path)
