"""Every prediction carries its newest re-applied decision (migration 004), and it is always the one the rule over
`decisions` names (newest decided_at, then the larger calibrator version): backfilled on a warehouse written
before the migration, kept by `write_decisions` as a recalibration re-applies a champion chunk by chunk, never
replaced by an older decision; re-applying holds one chunk in memory, not the window."""
from __future__ import annotations

import sys
import tracemalloc
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from calscore.calibration_store.document import build_document
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.store import save_calibrator
from calscore.jobs.calibrators import reapply
from calscore.jobs.common.clock import utcnow
from calscore.jobs.warehouse.connection import writer
from decision_rows import write_decisions_by_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synthetic_warehouse import LABELS, build_warehouse  # noqa: E402  (bench/ is not a package)

DECISION = "calibrator_version, label, confidence, calibrated_probs, bucket, bucket_reason, decided_at, run_id"
NEWEST = (f"select task_version, row_id, {DECISION} from decisions qualify row_number() over ("
          "partition by task_version, row_id order by decided_at desc, calibrator_version desc) = 1")
COPY = ("select task_version, row_id, reapplied_calibrator_version, reapplied_label, reapplied_confidence,"
        " from_json(reapplied_calibrated_probs_json, '\"MAP(VARCHAR, DOUBLE)\"'), reapplied_bucket,"
        " reapplied_bucket_reason, reapplied_at, reapplied_run_id"
        " from predictions where reapplied_at is not null")


def copy_and_rule(path: Path) -> tuple[list, list]:
    with duckdb.connect(str(path), read_only=True) as con:
        return sorted(con.sql(COPY).fetchall()), sorted(con.sql(NEWEST).fetchall())


def reapply_everything(spec, chunk_rows: int, monkeypatch) -> tuple[str, int]:
    """A new champion (temperature scaling) re-applied to every prediction, `chunk_rows` at a time."""
    spec = spec.model_copy(update={"calibration": spec.calibration.model_copy(update={"reapply_days": 100_000})})
    cal = make_calibrator("temperature", list(LABELS)).fit(np.array([[-0.3, -2.0], [-2.0, -0.3], [-0.3, -2.0]] * 7),
                                                           np.array([0, 1, 1] * 7))
    doc = build_document(cal, spec.name, spec.task_version, (utcnow(), utcnow()), 21, {"n": 21})
    monkeypatch.setattr(reapply, "REAPPLY_CHUNK_ROWS", chunk_rows)
    with writer(spec.warehouse.path) as con:
        version = save_calibrator(con, doc, actor="test")
        con.execute("BEGIN TRANSACTION")
        assert reapply.queue_reapplication(con, spec, version, "run-reapply-test")
        con.execute("COMMIT")
    return version, reapply.continue_reapplications(spec)


@pytest.fixture
def spec(tmp_path):
    return build_warehouse(tmp_path, 4_000)


def test_the_migration_backfills_the_newest_decision(spec):
    copy, rule = copy_and_rule(spec.warehouse.path)
    assert len(copy) == 1_000  # the first quarter of the nights was re-decided before the migration ran
    assert copy == rule


def test_reapplying_in_chunks_keeps_each_row_current(spec, monkeypatch):
    version, n = reapply_everything(spec, chunk_rows=300, monkeypatch=monkeypatch)
    assert n == 4_000
    copy, rule = copy_and_rule(spec.warehouse.path)
    assert len(copy) == 4_000 and copy == rule
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        assert con.execute("select count(*) from decisions").fetchone()[0] == 1_000 + 4_000
        assert con.execute("select count(*) from current_decisions where calibrator_version = ?"
                           " and decided_by = 'reapplied'", [version]).fetchone()[0] == 4_000


def test_an_older_decision_never_replaces_a_newer_one(spec):
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        old = con.sql(f"select task_version, row_id, {DECISION} from decisions limit 5").to_arrow_table()
    earlier = old.set_column(old.schema.get_field_index("decided_at"), "decided_at",
                             pa.array([t - timedelta(days=1) for t in old["decided_at"].to_pylist()],
                                      pa.timestamp("us", tz="UTC")))
    earlier = earlier.set_column(earlier.schema.get_field_index("calibrator_version"), "calibrator_version",
                                 pa.array(["an-older-one"] * 5))
    with writer(spec.warehouse.path) as con:
        write_decisions_by_key(con, earlier)
    copy, rule = copy_and_rule(spec.warehouse.path)
    assert copy == rule and "an-older-one" not in {row[2] for row in copy}


def test_reapplying_holds_a_chunk_not_the_window(tmp_path, monkeypatch):
    """30,000 rows to re-decide: in chunks of 1,000 Python's peak is a fraction of holding them all at once
    (which is what re-applying did, and grew by ~190 bytes a row)."""
    peaks = {}
    for chunk_rows in (1_000, 30_000):  # the chunked run first: it pays for any first-time allocation
        spec = build_warehouse(tmp_path / str(chunk_rows), 30_000)
        tracemalloc.start()
        try:
            reapply_everything(spec, chunk_rows=chunk_rows, monkeypatch=monkeypatch)
            peaks[chunk_rows] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[1_000] < 0.25 * peaks[30_000], peaks
