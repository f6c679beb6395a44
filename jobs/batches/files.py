"""Input batches: discovery, content hashes, schema checks and streaming reads.

A batch is one Parquet file. Its identity is (uri, content hash), so a file that
is rewritten with new content is a new batch, and an unchanged file is never
scored twice.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calscore.jobs.common.hashing import sha256_of
from calscore.jobs.spec import InputSpec

class BatchSchemaError(ValueError):
    """A batch file that cannot be scored at all (nothing of it is written)."""


@dataclass(frozen=True)
class BatchRef:
    uri: str
    content_hash: str

    @property
    def path(self) -> Path:
        return Path(self.uri)


def discover(location: str) -> list[BatchRef]:
    """Parquet files at `location` (a folder or a glob), sorted by path, with their hashes."""
    if Path(location).is_dir():
        paths = sorted(Path(location).glob("*.parquet"))
    else:
        paths = sorted(Path(p) for p in glob.glob(location))
    return [BatchRef(uri=str(p.resolve()), content_hash=sha256_of(p)) for p in paths if p.is_file()]


def check_schema(ref: BatchRef, columns: InputSpec) -> pa.Schema:
    """The batch's schema, or BatchSchemaError naming the file and the problem."""
    try:
        schema = pq.read_schema(ref.path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BatchSchemaError(f"{ref.uri}: not a readable Parquet file ({exc})") from None
    for role, name in (("id", columns.id_column), ("text", columns.text_column)):
        if name not in schema.names:
            raise BatchSchemaError(
                f"{ref.uri}: missing {role} column {name!r} (columns: {', '.join(schema.names)})"
            )
    text_type = schema.field(columns.text_column).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise BatchSchemaError(f"{ref.uri}: text column {columns.text_column!r} has type {text_type}, expected string")
    return schema


def iter_chunks(ref: BatchRef, rows_per_chunk: int):
    """Stream a batch in record batches (memory stays flat whatever the file size)."""
    parquet = pq.ParquetFile(ref.path)
    offset = 0
    for record_batch in parquet.iter_batches(batch_size=rows_per_chunk):
        table = pa.Table.from_batches([record_batch])
        yield offset, table
        offset += table.num_rows
