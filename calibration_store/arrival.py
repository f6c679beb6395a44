"""Which labels are newest: arrival order (import time, then scoring time, then a seeded order
stratified by label among rows that arrived together), and label times as naive UTC.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa


def utc_datetime64(times: Any, n: int) -> np.ndarray:
    """Times as naive-UTC datetime64[us]; aware datetimes and ISO strings are converted, naive ones taken as UTC."""
    if isinstance(times, (pa.Array, pa.ChunkedArray)):
        times = times.to_pylist()
    arr = np.asarray(times)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"times must be a 1-D sequence of {n} label times, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.datetime64):
        out = arr.astype("datetime64[us]")
    else:
        out = np.array([to_naive_utc(t) for t in arr.tolist()], dtype="datetime64[us]")
    if np.isnat(out).any():
        raise ValueError("times must not be missing (NaT/None)")
    return out


def to_naive_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"times must be datetimes or ISO 8601 strings, got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def iso_utc(t: np.datetime64) -> str:
    return t.astype("datetime64[us]").item().replace(tzinfo=timezone.utc).isoformat()


ARRIVAL_ORDER = ("imported_at", "scored_at", "seeded random order stratified by label")


def arrival_order(times: np.ndarray, y: np.ndarray, scored: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Row positions oldest first: by label time, then scoring time, then at random (seeded) within a tie.

    Within each set of rows that arrived together, the rows of each label are shuffled and
    spread evenly over the set (rank r of a label's m rows sorts at (r + u) / m, u uniform),
    so any newest slice of the set holds each label in the set's proportion, within one row.
    """
    n = times.shape[0]
    scored = np.zeros(n, dtype="datetime64[us]") if scored is None else scored
    rng = np.random.default_rng(seed)
    shuffle, jitter = rng.random(n), rng.random(n)
    by_cell = np.lexsort((shuffle, y, scored, times))
    st, ss, sy = times[by_cell], scored[by_cell], y[by_cell]
    new = np.ones(n, dtype=bool)
    new[1:] = (st[1:] != st[:-1]) | (ss[1:] != ss[:-1]) | (sy[1:] != sy[:-1])
    starts = np.flatnonzero(new)
    cell = np.cumsum(new) - 1
    sizes = np.diff(np.append(starts, n))
    spread = np.empty(n)
    spread[by_cell] = (np.arange(n) - starts[cell] + jitter[by_cell]) / sizes[cell]
    return np.lexsort((spread, scored, times))
