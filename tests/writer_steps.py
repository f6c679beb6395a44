"""The warehouse's writers, one step each, on a real task's warehouse: scoring a batch of the lookup backend
(write_staged), a label import (import_labels) and a re-application chunk's decisions (write_decisions); for the
tests that check what every writer keeps (the review queue, the labeled rows' copy and the decision counts)."""
from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from calscore.jobs.batches.files import discover
from calscore.jobs.batches.stage import get_scorer, score_batch
from calscore.jobs.labels.importing import import_labels
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.runs import finish_run, start_run
from calscore.jobs.warehouse.writer import write_staged
from decision_rows import write_decisions_by_key
from flow_fixtures import write_batch


def score(spec, name: str, n: int, start: int) -> None:
    """Score batch `name` (`n` rows from row `start`) in a run of its own, as a nightly run writes it."""
    write_batch(spec.source_path.parent, name, n, start)
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")
    for ref in discover(spec.input):
        if ref.key.endswith(f"{name}.parquet"):
            write_staged(spec, score_batch(spec, ref, run_id, get_scorer(spec), None), run_id)
    finish_run(spec.warehouse.path, run_id, "completed")


def label_rows(spec, ids: list[str], label: str) -> None:
    """Import `label` for every id, in an import of its own."""
    import_labels(spec, pa.table({"id": ids, "label": [label] * len(ids)}), f"labels-{label}-{ids[0]}")


def redecide(spec, decisions: dict[str, tuple[str, float]]) -> None:
    """Re-apply a champion to some rows, as a re-application chunk writes them: row_id -> (bucket, confidence)."""
    n = len(decisions)
    table = pa.table({
        "task_version": [spec.task_version] * n, "row_id": list(decisions), "calibrator_version": ["cal-test"] * n,
        "label": ["positive"] * n, "confidence": [c for _, c in decisions.values()],
        "calibrated_probs": pa.nulls(n, pa.map_(pa.string(), pa.float64())),
        "bucket": [b for b, _ in decisions.values()], "bucket_reason": pa.nulls(n, pa.string()),
        "run_id": ["run-reapply"] * n, "decided_at": pa.array([datetime.now(timezone.utc)] * n, pa.timestamp("us", "UTC")),
    })
    with writer(spec.warehouse.path) as con:
        con.execute("BEGIN TRANSACTION")
        write_decisions_by_key(con, table)
        con.execute("COMMIT")
