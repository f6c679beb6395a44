"""Nightly health checks: is tonight like the rows the champion was fitted on?

After each scoring run, tonight's rows are compared with a reference -- the champion's
fit rows, or with no champion yet the task_version's rows of the REFERENCE_DAYS before:

- `coverage`: mean probability on label tokens dropped by more than `[health] coverage_drop`;
- `off_format`: the share of off-format rows (coverage under the task's `coverage_floor`) rose by
  more than `off_format_rise`;
- `psi:<label>`: the population stability index of each label's raw share (its part of
  the label mass) is above `psi` (Siddiqi 2006: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a
  shift), on the reference's equal-mass deciles;
- `quarantine`: the quarantined share of the rows read rose by more than `quarantine_rise`;
- `bucket:<name>`: once held-out labels exist, a bucket whose realised accuracy is surely
  below its promise (the 95% Wilson upper bound under the bucket's lower bound).

A check without enough reference is recorded as `no_reference`, never as ok. Samples of
at most SAMPLE_ROWS rows per side (chosen by a hash of the row id, so reproducible) keep
memory flat however large the night.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from calscore.calibration_store.apply import logprob_matrix
from calscore.calibration_store.store import champion
from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.intervals import wilson_interval
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader, writer
from calscore.jobs.warehouse.statements import statement

SAMPLE_ROWS = 20_000
REFERENCE_DAYS = 7
PSI_BINS = 10
_FLOOR = 1e-4  # a bin share of 0 would make PSI infinite


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    reference: float | None
    threshold: float
    status: str  # ok | warning | no_reference
    detail: str
    reference_rows: int | None = None

    @property
    def warning(self) -> bool:
        return self.status == "warning"


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `actual` against `expected`: sum (a - e) ln(a / e) over the
    expected values' equal-mass bins, bin shares floored at 1e-4."""
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1) / len(expected)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1) / len(actual)
    e, a = np.maximum(e, _FLOOR), np.maximum(a, _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _rise(name: str, value: float | None, reference: float | None, threshold: float, n_ref: int, what: str,
          falling: bool = False) -> Check:
    if value is None or reference is None or not n_ref:
        return Check(name, value, reference, threshold, "no_reference", f"{what}: no reference rows yet", n_ref)
    change = (reference - value) if falling else (value - reference)
    status = "warning" if change > threshold else "ok"
    verb = "fell" if falling else "rose"
    return Check(name, value, reference, threshold, status,
                 f"{what} {value:.3f} vs {reference:.3f} ({verb} {change:+.3f}; warning beyond {threshold})", n_ref)


def _shares(con, spec: TaskSpec, run_id: str, champ: str | None, since, side: str, rows: int) -> np.ndarray:
    every = max(1, math.ceil(rows / SAMPLE_ROWS))
    table = con.sql(
        "SELECT label_logprobs FROM health_rows($1, $2, $3, $4) WHERE side = $5 AND hash(row_id) % $6 = 0",
        params=[spec.task_version, run_id, champ, since, side, every],
    ).to_arrow_table()
    lp = logprob_matrix(table["label_logprobs"], spec.label_names) if table.num_rows else np.zeros((0, len(spec.labels)))
    return np.exp(lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)) if len(lp) else lp


def _bucket_checks(con, spec: TaskSpec) -> list[Check]:
    found = {b: (acc, n) for b, acc, n in con.execute(statement("health_bucket_accuracy"),
                                                      {"task_version": spec.task_version}).fetchall()}
    out = []
    for bucket in spec.buckets[:-1]:  # the last bucket promises nothing
        accuracy, n_eff = found.get(bucket.name, (None, 0.0))
        name = f"bucket:{bucket.name}"
        if accuracy is None or n_eff < spec.health.min_bucket_labels:
            out.append(Check(name, accuracy, None, bucket.min, "no_reference",
                             f"bucket {bucket.name}: {n_eff:.0f} held-out labels (< {spec.health.min_bucket_labels})"))
            continue
        upper = wilson_interval(accuracy, n_eff)[1]
        status = "warning" if upper < bucket.min else "ok"
        out.append(Check(name, accuracy, upper, bucket.min, status,
                         f"bucket {bucket.name}: accuracy {accuracy:.3f} (95% upper bound {upper:.3f}, n_eff {n_eff:.0f}) "
                         f"against its promise >= {bucket.min}"))
    return out


def health_checks(spec: TaskSpec, run_id: str) -> list[Check]:
    """Tonight's checks for a scoring run (read-only)."""
    policy = spec.health
    with reader(spec.warehouse.path) as con:
        doc = champion(con, spec.task_version)
        champ = doc["version"] if doc else None
        since = utcnow() - timedelta(days=REFERENCE_DAYS)
        con.execute(statement("health_rows_macro"))
        # off-format: under today's floor on both sides, so a floor changed since the reference was scored is
        # not read as a change in the model's answers (and no NULL bucket_reason turns the share into 1)
        sides = {side: (n, coverage, off) for side, n, coverage, off in con.execute(
            "SELECT side, count(*), avg(coverage), avg((coverage < ?)::integer) FROM health_rows(?, ?, ?, ?)"
            " GROUP BY side", [spec.coverage_floor, spec.task_version, run_id, champ, since]).fetchall()}
        tonight, reference = sides.get("tonight", (0, None, None)), sides.get("reference", (0, None, None))
        shares = {side: _shares(con, spec, run_id, champ, since, side, sides[side][0]) for side in sides}
        quarantine = {side: share for side, share, _ in con.execute(
            statement("health_quarantine_shares"), {"task_name": spec.name, "run_id": run_id}).fetchall()}
        buckets = _bucket_checks(con, spec)
    n_ref = reference[0]
    checks = [
        _rise("coverage", tonight[1], reference[1], policy.coverage_drop, n_ref, "mean coverage", falling=True),
        _rise("off_format", tonight[2], reference[2], policy.off_format_rise, n_ref, "off-format share"),
        _rise("quarantine", quarantine.get("tonight"), quarantine.get("reference"), policy.quarantine_rise,
              n_ref, "quarantined share"),
    ]
    for j, label in enumerate(spec.label_names):
        name = f"psi:{label}"
        if not n_ref or not tonight[0]:
            checks.append(Check(name, None, None, policy.psi, "no_reference", f"{label}: no reference rows yet", n_ref))
            continue
        value = psi(shares["reference"][:, j], shares["tonight"][:, j])
        checks.append(Check(name, value, None, policy.psi, "warning" if value > policy.psi else "ok",
                            f"PSI of {label}'s raw share {value:.3f} (warning above {policy.psi})", n_ref))
    return checks + buckets


def record_checks(spec: TaskSpec, run_id: str, checks: list[Check]) -> None:
    now = utcnow()
    with writer(spec.warehouse.path) as con:
        for c in checks:
            con.execute(statement("health_checks_insert"), {
                "task_name": spec.name, "task_version": spec.task_version, "run_id": run_id,
                "check_name": c.name, "value": c.value, "reference": c.reference, "threshold": c.threshold,
                "status": c.status, "detail": c.detail, "reference_rows": c.reference_rows, "created_at": now,
            })


def health_lines(checks: list[Check]) -> list[str]:
    """One line per warning, and how many checks were ok or had no reference."""
    warnings = [f"health warning: {c.detail}" for c in checks if c.warning]
    ok = sum(c.status == "ok" for c in checks)
    missing = sum(c.status == "no_reference" for c in checks)
    return warnings + [f"health: {ok} check(s) ok, {len(warnings)} warning(s), {missing} without a reference yet"]
