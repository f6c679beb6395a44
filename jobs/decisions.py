"""Decision buckets: an ordered list of (name, inclusive lower bound) on the confidence."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calscore.jobs.spec import Bucket

OFF_FORMAT = "off_format"


def assign_buckets(
    confidence: np.ndarray,
    coverage: np.ndarray,
    buckets: Sequence[Bucket],
    coverage_floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket name per row, and a reason (None, or 'off_format' when the model put
    less than `coverage_floor` of its probability on any label token: those rows go
    to the last bucket whatever their confidence)."""
    confidence = np.asarray(confidence, dtype=float)
    names = np.array([b.name for b in buckets], dtype=object)
    bounds = np.array([b.min for b in buckets])
    # first bucket (highest first) whose bound the confidence reaches; the last
    # takes the rest, NaN included
    reached = confidence[:, None] >= bounds[None, :]
    reached[:, -1] = True
    index = np.argmax(reached, axis=1)
    off_format = np.asarray(coverage, dtype=float) < coverage_floor
    index[off_format] = len(buckets) - 1
    reasons = np.where(off_format, OFF_FORMAT, None).astype(object)
    return names[index], reasons
