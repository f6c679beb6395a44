"""The one streaming path: record batches in, record batches + score columns out, for any scorer.

    for table in iter_scores(scorer, parquet_file.iter_batches(), "text"):
        writer.write_table(table)

Batches are gathered into windows of about `window_rows` rows before scoring (a
backend sorts and packs inside a window), so memory stays flat however long the
stream. Both `score_file` and the nightly batch scoring use it.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from calscore.jobs.scoring.scorer import Scorer

DEFAULT_WINDOW_ROWS = 2_048


def iter_scores(
    scorer: Scorer,
    record_batches: Iterable[pa.RecordBatch | pa.Table],
    text_column: str,
    *,
    window_rows: int = DEFAULT_WINDOW_ROWS,
    null_text: str = "error",
) -> Iterator[pa.Table]:
    """Yield the input columns plus the score columns, window by window, in input order.

    Null text raises, unless `null_text="null"`: then those rows get null scores (the
    caller counts or quarantines them).
    """
    if null_text not in ("error", "null"):
        raise ValueError("null_text must be 'error' or 'null'")
    pending: list[pa.Table] = []
    count = 0
    for batch in record_batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch]))
        count += batch.num_rows
        if count >= window_rows:
            yield _score_window(scorer, pending, text_column, null_text)
            pending, count = [], 0
    if pending:
        yield _score_window(scorer, pending, text_column, null_text)


def _score_window(scorer: Scorer, tables: list[pa.Table], text_column: str, null_text: str) -> pa.Table:
    table = pa.concat_tables(tables)
    if text_column not in table.column_names:
        raise KeyError(f"text column {text_column!r} not in the input columns {table.column_names}")
    texts = table.column(text_column).to_pylist()
    present = [i for i, t in enumerate(texts) if t is not None]
    if len(present) < len(texts) and null_text == "error":
        raise ValueError(
            f"{len(texts) - len(present)} row(s) have null text in {text_column!r}; quarantine them before scoring"
        )
    scores = scorer.score([texts[i] for i in present])
    if len(present) < len(texts):
        # Spread the scored rows back, nulls elsewhere: take() with null indices gives null rows.
        where = np.full(len(texts), -1, dtype=np.int64)
        where[present] = np.arange(len(present))
        scores = scores.take(pa.array(where, mask=where < 0))
    clash = set(scores.column_names) & set(table.column_names)
    if clash:
        raise ValueError(f"input columns {sorted(clash)} clash with the score columns; rename them")
    for field in scores.schema:
        table = table.append_column(field, scores.column(field.name))
    return table
