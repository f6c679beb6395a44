"""The `lookup` backend: label log-probabilities read from a Parquet table, keyed by the exact text.

    [model]
    backend = "lookup"
    path = "scores.parquet"       # a `text` column and one float column per label: log p(label)

For scores computed elsewhere (another system, an earlier offline run) and for
tests of everything around scoring: deterministic, instant, and a real second
implementation of the scorer interface. A null value means the label's mass was
not observed; it is imputed as `scoring.schema` describes and the row says so.
A text the table does not hold is an error (nothing is guessed).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from calscore.jobs.common.config import StrictModel
from calscore.jobs.common.hashing import sha256_of
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.explain import Explanation, LabelRow
from calscore.jobs.scoring.prompting import PromptSpec
from calscore.jobs.scoring.schema import impute_unobserved, score_table


class LookupConfig(StrictModel):
    backend: Literal["lookup"]
    path: Path

    def describe(self) -> str:
        return f"lookup:{self.path}"


class LookupScorer:
    """Scores texts by looking them up in a table of label log-probabilities."""

    def __init__(self, config: LookupConfig, labels: Sequence[str], version_parts: Mapping[str, Any]):
        self.path = Path(config.path)
        self.labels = tuple(labels)
        self.version_parts = dict(version_parts)
        table = _read(self.path, self.labels)
        self._row = {text: i for i, text in enumerate(table["text"].to_pylist())}
        self._values = np.column_stack(
            [pc.fill_null(table[label].cast(pa.float64()), math.nan).to_numpy() for label in self.labels]
        )

    def _label_logprobs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        missing = [t for t in texts if t not in self._row]
        if missing:
            raise ScorerError(f"{len(missing)} text(s) are not in the lookup table {self.path} "
                              f"(first: {missing[0][:80]!r}); the lookup backend scores only texts it holds")
        values = self._values[[self._row[t] for t in texts]] if texts else np.empty((0, len(self.labels)))
        mass = np.exp(values)  # NaN stays NaN: not observed
        observed = np.where(np.isnan(mass), np.inf, mass)
        return impute_unobserved(mass, observed.min(axis=1, initial=np.inf), np.nansum(mass, axis=1))

    def score(self, texts: Sequence[str]) -> pa.Table:
        logprobs, unobserved = self._label_logprobs(texts)
        return score_table(logprobs, self.labels, [False] * len(texts), [None] * len(texts), unobserved=unobserved)

    def explain(self, text: str, top_k: int = 10) -> Explanation:
        logprobs, unobserved = self._label_logprobs([text])
        lp, missing = logprobs[0], unobserved[0]
        observed_total = float(np.logaddexp.reduce(np.where(missing, -np.inf, lp)))
        total = float(np.logaddexp.reduce(lp))
        best = int(np.argmax(lp))
        return Explanation(
            text=text, n_tokens=None, truncated=False, top_tokens=[],
            labels=[LabelRow(label, [], float(v), observed=not m) for label, v, m in zip(self.labels, lp, missing)],
            prediction=self.labels[best], raw_confidence=math.exp(lp[best] - total),
            coverage=math.exp(observed_total), coverage_is_lower_bound=bool(missing.any()),
            notes=[f"lookup backend: label log-probabilities read from {self.path}; no token-level detail"],
        )

    def describe(self) -> dict[str, Any]:
        return {"backend": "lookup", "model": f"lookup:{self.path}", "device": None, "dtype": None,
                "precision": "as stored in the table", "version_parts": self.version_parts}


def _read(path: Path, labels: Sequence[str]) -> pa.Table:
    if not path.is_file():
        raise ScorerError(f"lookup table not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ScorerError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in ("text", *labels) if c not in table.column_names]
    if missing:
        raise ScorerError(f"{path}: missing column(s) {missing}; a lookup table has `text` and one column per label")
    if table["text"].null_count or len(set(table["text"].to_pylist())) != table.num_rows:
        raise ScorerError(f"{path}: the `text` column must be non-null and unique")
    return table


class LookupBackend:
    name = "lookup"
    config = LookupConfig

    def version_parts(self, config: LookupConfig) -> dict[str, Any]:
        """The table's content: a changed table is a new task_version."""
        if not Path(config.path).is_file():
            raise ScorerError(f"lookup table not found: {config.path}")
        return {"backend": self.name, "table": sha256_of(Path(config.path))}

    def provenance(self, config: LookupConfig) -> dict[str, Any]:
        return {"model": config.describe(), "model_fingerprint": self.version_parts(config)["table"],
                "dtype": None, "device": None}

    def load(self, config: LookupConfig, prompt: PromptSpec, labels: Mapping[str, Sequence[str]]) -> LookupScorer:
        return LookupScorer(config, list(labels), self.version_parts(config))


LOOKUP = LookupBackend()
