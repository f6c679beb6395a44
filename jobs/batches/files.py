"""Input batches: discovery, identity, schema checks and streaming reads.

A batch is one Parquet file. Its identity is its **key** -- its path relative to the
task's input location -- plus its content hash: a file rewritten with new content is a
new batch, an unchanged file is never scored twice, and a copied, moved or re-mounted
input folder (same keys, same contents) is not scored again.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.common.hashing import sha256_of
from calscore.jobs.spec import InputSpec


class BatchSchemaError(CalscoreError, ValueError):
    """A batch file that cannot be scored at all (nothing of it is written)."""


class BatchReadError(CalscoreError, OSError):
    """A batch whose data cannot be read or decoded (a corrupt page, a truncated file)."""


class InputLocationError(CalscoreError, ValueError):
    """The task's input location does not exist."""


@dataclass(frozen=True)
class BatchRef:
    key: str  # path relative to `root`, with '/' separators: the batch's name in the ledger
    content_hash: str
    root: str = ""  # the folder keys are relative to (see input_root)

    @property
    def path(self) -> Path:
        return Path(self.root) / self.key


def input_root(location: str) -> Path:
    """The folder batch keys are relative to: the location itself, or a glob's leading folders without wildcards."""
    parts = Path(location).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


def discover(spec_input: InputSpec) -> list[BatchRef]:
    """Parquet files at the input location (a folder or a glob), sorted by key, with their hashes."""
    location = spec_input.location
    root = input_root(location)
    if not root.is_dir():
        raise InputLocationError(f"[input] location {location!r} does not exist (or is not a folder)")
    paths = sorted(root.glob("*.parquet")) if root == Path(location) else sorted(Path(p) for p in glob.glob(location))
    return [BatchRef(p.relative_to(root).as_posix(), sha256_of(p), str(root)) for p in paths if p.is_file()]


def batch_ref(spec_input: InputSpec, key: str, content_hash: str) -> BatchRef:
    """The batch `key` of this task's input location (for tasks that get a key, not a path)."""
    return BatchRef(key, content_hash, str(input_root(spec_input.location)))


def check_schema(ref: BatchRef, columns: InputSpec) -> pa.Schema:
    """The batch's schema, or BatchSchemaError naming the file and the problem."""
    try:
        schema = pq.read_schema(ref.path)
    except (pa.ArrowException, OSError) as exc:
        raise BatchSchemaError(f"{ref.key}: not a readable Parquet file ({exc})") from None
    for role, name in (("id", columns.id_column), ("text", columns.text_column)):
        if name not in schema.names:
            raise BatchSchemaError(
                f"{ref.key}: missing {role} column {name!r} (columns: {', '.join(schema.names)})"
            )
    text_type = schema.field(columns.text_column).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise BatchSchemaError(f"{ref.key}: text column {columns.text_column!r} has type {text_type}, expected string")
    return schema


def row_count(ref: BatchRef) -> int:
    """Rows in the batch, from the Parquet footer."""
    try:
        return pq.ParquetFile(ref.path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise BatchReadError(f"{ref.key}: cannot read the batch's footer ({exc})") from exc


def iter_chunks(ref: BatchRef, rows_per_chunk: int):
    """Stream a batch in record batches (memory stays flat whatever the file size).

    A file whose footer is fine but whose data cannot be decoded fails here, chunk by
    chunk: raised as BatchReadError naming the file, so that batch fails alone.
    """
    try:
        parquet = pq.ParquetFile(ref.path)
        offset = 0
        for record_batch in parquet.iter_batches(batch_size=rows_per_chunk):
            table = pa.Table.from_batches([record_batch])
            yield offset, table
            offset += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise BatchReadError(f"{ref.key}: cannot read the batch's data ({exc})") from exc
