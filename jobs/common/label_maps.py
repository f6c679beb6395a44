"""Per-label numbers as the warehouse stores them: MAP(label -> value), built columnar.

    label_map(probs, ["positive", "negative"])            # (n, K) matrix -> MAP per row
    label_map(None, labels, n=3)                          # three null maps (no such numbers)
    label_map(values, labels, null_rows=mask)             # some rows null (e.g. not sampled)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa


def label_map(values: np.ndarray | None, labels: Sequence[str], n: int | None = None,
              null_rows: np.ndarray | None = None) -> pa.MapArray:
    """(n, K) values in label order as MAP(label -> value); None gives n null maps."""
    k = len(labels)
    if values is None:
        return pa.nulls(n or 0, pa.map_(pa.string(), pa.float64()))
    values = np.asarray(values, dtype=np.float64).reshape(-1, k)
    rows = values.shape[0]
    offsets = pa.array(np.arange(rows + 1) * k, pa.int32())
    mask = None if null_rows is None else pa.array(np.asarray(null_rows, dtype=bool))
    return pa.MapArray.from_arrays(offsets, pa.array(list(labels) * rows, pa.string()),
                                   pa.array(values.reshape(-1), pa.float64()), mask=mask)
