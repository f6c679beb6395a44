"""Audit samples: a random, bucket-stratified sample of predictions to label.

Labels from the review queue alone are mostly the uncertain rows, a biased
sample. An audit sample draws from every bucket and records each row's
inclusion probability, so calibration and threshold tables can weight each
label by 1 / inclusion probability and speak for all predictions.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from calscore.jobs.spec import TaskSpec
from calscore.jobs.common.clock import utcnow
from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.statements import statement


def allocate(stratum_sizes: dict[str, int], n: int) -> dict[str, int]:
    """Equal allocation across strata, capped by each stratum's size; what a small
    stratum cannot take goes to the others. Rare buckets get enough labels to be
    measured; the weights undo the oversampling."""
    left = {k: v for k, v in stratum_sizes.items() if v > 0}
    take = {k: 0 for k in stratum_sizes}
    remaining = min(n, sum(left.values()))
    while remaining > 0 and left:
        share = max(1, remaining // len(left))
        for k in sorted(left, key=lambda s: left[s]):
            add = min(share, left[k] - take[k], remaining)
            take[k] += add
            remaining -= add
        left = {k: v for k, v in left.items() if take[k] < v}
    return take


def draw_audit_sample(spec: TaskSpec, n: int, seed: int | None = None) -> pa.Table:
    """Draw and record a sample of this task_version's predictions; return it for labelling."""
    rng = np.random.default_rng(seed)
    sample_id = f"audit-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    with writer(spec.warehouse.path) as con:
        population = con.sql(
            statement("audit_sample_population"), params={"task_version": spec.task_version}
        ).to_arrow_table()
        if population.num_rows == 0:
            raise ValueError(f"no predictions for task {spec.name} (task_version {spec.task_version}) to sample from")
        buckets = np.array(population["bucket"].to_pylist(), dtype=object)
        sizes = {b: int((buckets == b).sum()) for b in dict.fromkeys(buckets)}
        chosen, probs = [], []
        for bucket, k in allocate(sizes, n).items():
            members = np.flatnonzero(buckets == bucket)
            picked = rng.choice(members, size=k, replace=False) if k else []
            chosen.extend(picked)
            probs.extend([k / len(members)] * k)
        order = np.argsort(chosen)
        rows = population.take(pa.array(np.asarray(chosen, dtype=np.int64)[order]))
        sample = rows.append_column("inclusion_prob", pa.array(np.asarray(probs)[order], pa.float64()))
        sample = sample.append_column("sample_id", pa.array([sample_id] * sample.num_rows, pa.string()))
        con.register("sample", sample)
        con.execute(
            statement("audit_samples_insert"),
            {"task_name": spec.name, "task_version": spec.task_version, "created_at": utcnow()},
        )
    return sample.rename_columns(["id" if c == "row_id" else c for c in sample.column_names])


def write_sample(sample: pa.Table, path: Path) -> None:
    """Parquet or CSV by suffix, with an empty `label` column for the labeller."""
    out = sample.append_column("label", pa.nulls(sample.num_rows, pa.string()))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        pacsv.write_csv(out, path)
    else:
        pq.write_table(out, path)
