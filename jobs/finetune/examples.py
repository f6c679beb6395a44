"""The task's current labels with the rows they label: text, scoring time, segment, and the base
model's stored raw scores.

    rows = load_examples(spec)      # spec: the base task (no adapter); its predictions hold the texts

Only rows the base task version scored take part: their stored label log-probabilities are the
base model's raw scores on exactly these prompts, so the comparison never re-runs the base.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from calscore.jobs.calibrators.labeled_rows import load_labeled_rows
from calscore.jobs.finetune.errors import FinetuneError
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader

# trivial lookup of the labeled rows' text, time and coverage (the join itself is labels_with_raw_scores)
_ROW_FIELDS = """
select p.row_id, p.text, p.scored_at, p.coverage
from predictions p join wanted w on p.row_id = w.row_id
where p.task_version = $task_version
"""


@dataclass(frozen=True)
class Examples:
    row_ids: np.ndarray
    texts: np.ndarray  # object array of str
    y: np.ndarray  # label index, task label order
    scored_at: np.ndarray  # datetime64[us], UTC
    segments: np.ndarray
    weights: np.ndarray  # 1 / audit inclusion probability (1 when unknown)
    base_logprobs: np.ndarray  # (n, K) the base model's stored label log-probabilities
    base_coverage: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "Examples":
        return Examples(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def load_examples(spec: TaskSpec) -> Examples:
    """Current labels joined with the base task version's predictions (FinetuneError when there are none)."""
    labeled = load_labeled_rows(spec)
    if not len(labeled):
        raise FinetuneError(f"task {spec.name}: no current labels on rows scored by task version {spec.task_version} "
                         "(score a night and import labels first)")
    with reader(spec.warehouse.path) as con:
        con.register("wanted", pa.table({"row_id": pa.array(labeled.row_ids.tolist(), pa.string())}))
        fields = con.sql(_ROW_FIELDS, params={"task_version": spec.task_version}).to_arrow_table()
    position = {r: i for i, r in enumerate(fields["row_id"].to_pylist())}
    at = np.array([position[r] for r in labeled.row_ids.tolist()])
    scored_at = fields["scored_at"].cast(pa.timestamp("us")).to_numpy()[at]
    return Examples(
        row_ids=np.asarray(labeled.row_ids, dtype=object),
        texts=np.asarray(fields["text"].to_pylist(), dtype=object)[at],
        y=labeled.y,
        scored_at=scored_at,
        segments=np.asarray(labeled.segments, dtype=object),
        weights=labeled.weights,
        base_logprobs=labeled.logprobs,
        base_coverage=fields["coverage"].to_numpy()[at],
    )
