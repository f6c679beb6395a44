"""Apply a calibrator to a table of stored raw scores (Arrow or polars).

The table needs a `label_logprobs` column: MAP(VARCHAR, DOUBLE) as the
warehouse stores it (label -> log p(label); a polars or Arrow list of
{key, value} structs works too), or a list of doubles already in the
calibrator's label order. Every row must give every label exactly once.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from calscore.calibration_store.base import BaseCalibrator


def logprob_matrix(column: pa.ChunkedArray | pa.Array, labels: Sequence[str], name: str = "label_logprobs") -> np.ndarray:
    """(n, K) label log-probabilities, in `labels` order, from an Arrow MAP / list<struct> / list<double> column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n, k = len(arr), len(labels)
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{name} is null in row {row} ({arr.null_count} null row(s)): no raw score to calibrate")
    typ = arr.type
    is_list = pa.types.is_list(typ) or pa.types.is_large_list(typ)
    offsets = arr.offsets.to_numpy()  # absolute positions into the (unsliced) child arrays
    lo, hi = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    if is_list and pa.types.is_floating(typ.value_type):
        if (lengths != k).any():
            row = int(np.flatnonzero(lengths != k)[0])
            raise ValueError(f"{name} row {row} holds {lengths[row]} values; expected one per label ({k})")
        return arr.values.slice(lo, hi - lo).cast(pa.float64()).to_numpy(zero_copy_only=False).reshape(n, k)
    if pa.types.is_map(typ):
        keys, values = arr.keys, arr.items
    elif is_list and pa.types.is_struct(typ.value_type) and {"key", "value"} <= {f.name for f in typ.value_type}:
        keys, values = arr.values.field("key"), arr.values.field("value")
    else:
        raise ValueError(f"{name} must be MAP(VARCHAR, DOUBLE) or a list of doubles, got {typ}")
    keys = keys.slice(lo, hi - lo).cast(pa.string()).to_numpy(zero_copy_only=False)
    values = values.slice(lo, hi - lo).cast(pa.float64()).to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(n), lengths)
    out = np.full((n, k), np.nan)
    for j, label in enumerate(labels):
        hit = keys == label
        count = np.bincount(rows[hit], minlength=n)
        if (count != 1).any():
            row = int(np.flatnonzero(count != 1)[0])
            raise ValueError(f"{name} row {row} gives label {label!r} {int(count[row])} times; expected once")
        out[rows[hit], j] = values[hit]
    return out


def predict_labels(calibrator: BaseCalibrator, logprobs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities (n, K), predicted label index (n,), confidence (n,)): the calibrated argmax and its probability.

    The one place a calibrated prediction is made; `calscore.jobs.decisions` adds the coverage
    floor and the buckets on top.
    """
    probs = calibrator.predict_proba(logprobs) if len(logprobs) else np.empty((0, len(calibrator.labels)))
    best = np.argmax(probs, axis=1)
    return probs, best, probs[np.arange(probs.shape[0]), best]


def apply_to_table(
    calibrator: BaseCalibrator,
    table: Any,
    labels: Sequence[str] | None = None,
    column: str = "label_logprobs",
) -> Any:
    """The table with calibrated_label, calibrated_confidence and calibrated_prob_<label> per label added.

    Returns the same kind of table it was given (pyarrow.Table or polars.DataFrame).
    `labels`, if given, must be the calibrator's label set.
    """
    if labels is not None and set(labels) != set(calibrator.labels):
        raise ValueError(f"the table's labels {list(labels)} differ from the calibrator's {list(calibrator.labels)}")
    is_polars = type(table).__module__.split(".")[0] == "polars"
    arrow = table.to_arrow() if is_polars else table
    if not isinstance(arrow, pa.Table):
        raise ValueError(f"apply_to_table takes a pyarrow.Table or polars.DataFrame, got {type(table).__name__}")
    if column not in arrow.column_names:
        raise ValueError(f"the table has no {column!r} column (columns: {arrow.column_names})")
    logprobs = (logprob_matrix(arrow.column(column), calibrator.labels, column) if arrow.num_rows
                else np.empty((0, len(calibrator.labels))))
    probs, best, confidence = predict_labels(calibrator, logprobs)
    new = {
        "calibrated_label": pa.array(np.asarray(calibrator.labels, dtype=object)[best], type=pa.string()),
        "calibrated_confidence": pa.array(confidence, type=pa.float64()),
    }
    for j, label in enumerate(calibrator.labels):
        new[f"calibrated_prob_{label}"] = pa.array(probs[:, j], type=pa.float64())
    for name, values in new.items():
        if name in arrow.column_names:  # re-applying replaces the previous calibration
            arrow = arrow.drop_columns([name])
        arrow = arrow.append_column(name, values)
    if is_polars:
        import polars as pl

        return pl.from_arrow(arrow)
    return arrow
