"""Combined: both confidence signals for every row, for a calibrator that learns how to weigh them.

`label_logprobs`, coverage and the raw prediction come from the first-token
log-probabilities (so every label-log-probability calibrator, bucket and report works
on them as for `method = "logprobs"`); `agreement` and `samples` carry the
consistency signal beside them. `calibration_store.combined.CombinedCalibrator`
fits a logistic map on both, and `compare_signals` shows on held-out labels whether
the pair beats either signal alone.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from calscore.jobs.scoring.explain import Explanation
from calscore.jobs.scoring.schema import with_row_errors


class CombinedScorer:
    """A log-probability scorer and a consistency scorer on the same rows (a `Scorer`)."""

    def __init__(self, logprobs, consistency, version_parts: Mapping[str, Any]):
        if tuple(logprobs.labels) != tuple(consistency.labels):
            raise ValueError("both signals must score the same labels in the same order")
        self.logprobs = logprobs
        self.consistency = consistency
        self.labels = tuple(logprobs.labels)
        self.version_parts = dict(version_parts)

    def score(self, texts: Sequence[str]) -> pa.Table:
        table = self.logprobs.score(texts)
        rates, sample_errors = self.consistency.agreement(texts)
        first_errors = table["error"].to_pylist() if "error" in table.column_names else [None] * len(texts)
        errors = [a or b for a, b in zip(first_errors, sample_errors)]
        ok = np.array([e is None for e in errors], dtype=bool)
        samples = self.consistency.samples
        agreement = pa.array([list(r) if good else None for r, good in zip(rates, ok)], pa.list_(pa.float64()))
        table = table.set_column(table.schema.get_field_index("agreement"), "agreement", agreement)
        table = table.set_column(table.schema.get_field_index("samples"), "samples",
                                 pa.array([samples if good else None for good in ok], pa.int32()))
        # a row either signal failed on is a failed row: re-spread the good ones under the merged errors
        return with_row_errors(table.filter(pa.array(ok)), errors)

    def explain(self, text: str, top_k: int = 10) -> Explanation:
        first = self.logprobs.explain(text, top_k)
        sampled = self.consistency.explain(text, top_k)
        return replace(first, notes=first.notes + sampled.notes, agreement=[row.logprob for row in sampled.labels])

    def usage(self) -> dict[str, Any]:
        """What the endpoint cost (both signals share one client); empty for the local engine."""
        return self.consistency.usage()

    def describe(self) -> dict[str, Any]:
        return {**self.logprobs.describe(), "method": "combined", "samples": self.consistency.samples,
                "version_parts": self.version_parts}
