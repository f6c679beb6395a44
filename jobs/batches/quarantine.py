"""Row-level quarantine: the rows of a batch that cannot be scored, each with a stable reason.

Reasons are stable strings (analysts filter on them). Rows already scored for this
task_version are found by the writer, which knows the warehouse (`already_scored`);
scoring never reads the warehouse.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from calscore.jobs.spec import InputSpec

# Quarantine reasons (stable strings: analysts filter on them).
NULL_TEXT = "null_text"
EMPTY_TEXT = "empty_text"
NULL_ID = "null_id"
DUPLICATE_ID = "duplicate_id"
ALREADY_SCORED = "already_scored"
ENDPOINT_ERROR = "endpoint_error"  # a remote scorer could not score this row (the message is in detail)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("row_index", pa.int64()),
        ("row_id", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


def split_rows(
    table: pa.Table,
    offset: int,
    columns: InputSpec,
    seen_ids: set[str],
) -> tuple[pa.Table, pa.Table]:
    """Split one chunk of a batch into rows to score and quarantined rows.

    `offset` is the chunk's first row index in the file; `seen_ids` (ids met in
    earlier chunks of this batch) is updated in place. The valid table gains `row_index`.
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
