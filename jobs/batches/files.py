"""Input batches: discovery, content hashes, schema checks and row-level quarantine.

A batch is one Parquet file. Its identity is (uri, content hash), so a file that
is rewritten with new content is a new batch, and an unchanged file is never
scored twice.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from calscore.jobs.scoring.fingerprint import sha256_of
from calscore.jobs.spec import InputSpec

# Quarantine reasons (stable strings: analysts filter on them).
NULL_TEXT = "null_text"
EMPTY_TEXT = "empty_text"
NULL_ID = "null_id"
DUPLICATE_ID = "duplicate_id"
ALREADY_SCORED = "already_scored"

QUARANTINE_SCHEMA = pa.schema(
    [
        ("row_index", pa.int64()),
        ("row_id", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


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


def split_rows(
    table: pa.Table,
    offset: int,
    columns: InputSpec,
    seen_ids: set[str],
    scored_ids: set[str],
) -> tuple[pa.Table, pa.Table]:
    """Split one chunk of a batch into rows to score and quarantined rows.

    `offset` is the chunk's first row index in the file; `seen_ids` (ids met in
    earlier chunks of this batch) is updated in place; `scored_ids` are ids
    already scored for this task_version. The valid table gains `row_index`.
    """
    n = table.num_rows
    index = pa.array(range(offset, offset + n), pa.int64())
    ids = pc.cast(table[columns.id_column], pa.string())
    text = table[columns.text_column]
    reasons: list[str | None] = [None] * n
    for i, (row_id, t) in enumerate(zip(ids.to_pylist(), text.to_pylist())):
        if row_id is None or row_id == "":
            reasons[i] = NULL_ID
        elif t is None:
            reasons[i] = NULL_TEXT
        elif not t.strip():
            reasons[i] = EMPTY_TEXT
        elif row_id in seen_ids:
            reasons[i] = DUPLICATE_ID
        elif row_id in scored_ids:
            reasons[i] = ALREADY_SCORED
        if row_id is not None and reasons[i] not in (NULL_ID, DUPLICATE_ID):
            seen_ids.add(row_id)
    bad = pa.array([r is not None for r in reasons])
    quarantined = pa.table(
        {
            "row_index": index.filter(bad),
            "row_id": ids.filter(bad),
            "reason": pa.array([r for r in reasons if r is not None], pa.string()),
            "detail": pa.nulls(sum(r is not None for r in reasons), pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    valid = table.append_column("row_index", index).filter(pc.invert(bad))
    return valid, quarantined


def iter_chunks(ref: BatchRef, rows_per_chunk: int):
    """Stream a batch in record batches (memory stays flat whatever the file size)."""
    parquet = pq.ParquetFile(ref.path)
    offset = 0
    for record_batch in parquet.iter_batches(batch_size=rows_per_chunk):
        table = pa.Table.from_batches([record_batch])
        yield offset, table
        offset += table.num_rows
