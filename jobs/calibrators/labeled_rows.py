"""The task's current labels with their rows' stored raw scores: what a recalibration fits and cross-fits on.

    rows = load_labeled_rows(spec)
    certify = certification_slice(spec.name, rows.row_ids, rows.certifies, spec.calibration.certify_fraction)
    evidence_rows = rows.take(~certify)      # the rest: out-of-fold evidence, and the champion's fit

Labels are weighted by 1 / inclusion probability (audit and random samples), so figures speak for all
predictions, not just the labeled ones; a convenience label weighs 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from calscore.calibration_store.apply import logprob_matrix
from calscore.jobs.decisions import agreement_signal
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.statements import statement

CERTIFYING_DESIGNS = ("audit", "random")  # sampling designs with known inclusion probabilities


@dataclass(frozen=True)
class LabeledRows:
    """Current labels joined with this task_version's stored raw scores, in arrival order (import, then scoring)."""

    row_ids: np.ndarray
    logprobs: np.ndarray  # (n, K) label log-probabilities, task label order
    coverage: np.ndarray
    y: np.ndarray  # label index
    weights: np.ndarray  # 1 / inclusion probability (1 when unknown or a convenience label)
    certifies: np.ndarray  # bool: the label comes from a sampling design (audit or random)
    imported_at: np.ndarray
    scored_at: np.ndarray
    nights: np.ndarray  # the rows' scoring nights (datetime64[D])
    segments: np.ndarray
    agreement: np.ndarray | None  # (n, K) smoothed agreement log-probabilities of a `combined` task; None otherwise

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "LabeledRows":
        values = (getattr(self, f) for f in self.__dataclass_fields__)
        return LabeledRows(*(None if v is None else v[index] for v in values))


# Reading the labels' raw scores joins them to every prediction; DuckDB would keep what it scanned cached (up to
# 80% of RAM), so the read session is capped, as a report's is: what it returns is bounded by the labels.
READ_MEMORY_LIMIT = "256MB"


def label_indices(column: pa.ChunkedArray, labels: list[str]) -> np.ndarray:
    """Each label's index in the task's label order, column by column (hundreds of thousands at scale)."""
    y = pc.index_in(column, value_set=pa.array(labels))
    if y.null_count:
        raise ValueError(f"label {column[y.is_null().index(True).as_py()]!r} is not one of {labels}")
    return y.to_numpy().astype(int)


def load_labeled_rows(spec: TaskSpec) -> LabeledRows:
    with reader(spec.warehouse.path) as con:
        con.execute(f"SET memory_limit = '{READ_MEMORY_LIMIT}'")
        table = con.sql(
            statement("labels_with_raw_scores"), params={"task_version": spec.task_version, "task_name": spec.name}
        ).to_arrow_table()
    labels = spec.label_names
    design = table["design"].to_numpy(zero_copy_only=False)
    certifies = np.isin(design, CERTIFYING_DESIGNS)
    inclusion = pc.fill_null(table["inclusion_prob"], 0.0).to_numpy()
    return LabeledRows(
        row_ids=table["row_id"].to_numpy(zero_copy_only=False),
        logprobs=logprob_matrix(table["label_logprobs"], labels) if table.num_rows else np.zeros((0, len(labels))),
        coverage=pc.fill_null(table["coverage"], np.nan).to_numpy(),
        y=label_indices(table["label"], labels),
        # unknown inclusion probability, or no design: weight 1 (as the current_labels view)
        weights=np.where(certifies & (inclusion > 0), 1.0 / np.where(inclusion > 0, inclusion, 1.0), 1.0),
        certifies=certifies,
        imported_at=table["imported_at"].to_numpy(),
        scored_at=table["scored_at"].to_numpy(),
        nights=table["night"].to_numpy(),
        segments=table["segment"].to_numpy(zero_copy_only=False),
        agreement=agreement_signal(spec, table),
    )
