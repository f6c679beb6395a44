"""Label times as naive UTC: what a calibrator's fit window is recorded in."""
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
