"""The coverage floor suggestion states what it costs (predictions sent to manual, counted in DuckDB over all the
task's predictions, next to the task file's floor) and cites only labels that exist."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from prediction_rows import insert_audit_labels, insert_predictions, task

from calscore.jobs.reports.bucket_order import FloorCost, floor_cost, floor_line, suggest_floor
from calscore.jobs.reports.queries import report_connection
from calscore.jobs.reports.thresholds import thresholds_text
from calscore.jobs.spec import Bucket
from calscore.jobs.warehouse.connection import writer

BUCKETS = (Bucket(name="auto", min=0.9), Bucket(name="review", min=0.7), Bucket(name="manual", min=0.0))
NIGHT = datetime(2025, 3, 1, 22, 0, tzinfo=timezone.utc)
# AG-News-like (as in test_bucket_order): (coverage, confidence, predictions, audit labels, of them right).
# Off-format rows (coverage < 0.5) are mostly right; the labels support a floor of 0.30.
GROUPS = [
    (0.95, 0.95, 300, 20, 19),  # auto
    (0.90, 0.80, 300, 20, 10),  # review: 0.50
    (0.12, 0.95, 100, 10, 2),   # 0.20
    (0.32, 0.95, 200, 20, 20),  # 1.00
    (0.42, 0.95, 100, 10, 9),   # 0.90
]


def test_with_no_audit_label_it_says_so_instead_of_citing_labels():
    s = suggest_floor(BUCKETS, [], [], [])
    line = floor_line(s, 0.5, FloorCost(rows=1000, current=400, suggested=None))
    assert s["floor"] is None and "no audit label has coverage" not in line
    assert line.endswith("none: there are no audit labels (audit or random sample) to suggest a floor from; the "
                         "task file's 0.50 sends 400 of the 1,000 predictions to manual as off-format")


def test_a_scan_that_runs_out_of_labels_is_not_reported_as_a_finding():
    # review's only labels have coverage 0.6: at 0.65 none is left in review, which proves nothing about the rows
    # below the floor (4 of 6 right)
    coverage = [0.6] * 5 + [0.3] * 6
    right = [True] * 5 + [True] * 4 + [False] * 2
    s = suggest_floor(BUCKETS, coverage, [0.8] * 11, right)
    assert s["floor"] == 0.60 and s["stopped"]["floor"] == 0.65 and s["stopped"]["kept"]["accuracy"] is None
    line = floor_line(s, 0.5, FloorCost(rows=50, current=6, suggested=11))
    assert "more accurate" not in line
    assert ("0.60, the highest candidate (0.00 up by 0.05) before the first that leaves no audit label in review to "
            "compare with; at 0.65: coverage below it accuracy 0.818") in line
    assert line.endswith("; 0.60 would send 11 of the 50 predictions to manual as off-format; the task file's 0.50 "
                         "sends 6")


@pytest.fixture()
def warehouse(tmp_path):
    """1,000 predictions on NIGHT (GROUPS) with 80 audit labels, and 500 on-format ones the night after."""
    path = tmp_path / "calscore.duckdb"
    spec = task(path, buckets=[b.model_dump() for b in BUCKETS], coverage_floor=0.5)
    coverage = np.concatenate([np.full(n, cov) for cov, _, n, _, _ in GROUPS])
    confidence = np.concatenate([np.full(n, conf) for _, conf, n, _, _ in GROUPS])
    with writer(path) as con:
        ids = insert_predictions(con, spec, "run-1", coverage, confidence, NIGHT)
        insert_predictions(con, spec, "run-2", np.full(500, 0.9), np.full(500, 0.95), NIGHT + timedelta(days=1))
        starts = np.cumsum([0] + [n for _, _, n, _, _ in GROUPS])
        for start, (_, _, _, labeled, right) in zip(starts, GROUPS):
            insert_audit_labels(con, spec, ids[start:start + labeled], [True] * right + [False] * (labeled - right),
                                inclusion_prob=0.1)
    return spec


def floor_of(text: str) -> str:
    [line] = [x for x in text.splitlines() if x.startswith("coverage floor from labels")]
    return line


def test_thresholds_states_what_the_suggested_and_the_current_floor_send_to_manual(warehouse):
    line = floor_of(thresholds_text(warehouse, 0.85, night=NIGHT.date()))
    # the labels below 0.30 are 10; the predictions 100, all counted, the unlabeled ones too
    assert line.startswith("coverage floor from labels (task file: 0.50; a suggestion, the task file is not "
                           "changed): 0.30, the highest candidate")
    assert line.endswith("; 0.30 would send 100 of the 1,000 predictions to manual as off-format; the task file's "
                         "0.50 sends 400")
    # all nights: the second night's 500 on-format rows count among the predictions, not among the rows sent
    assert floor_of(thresholds_text(warehouse, 0.85)).endswith(
        "; 0.30 would send 100 of the 1,500 predictions to manual as off-format; the task file's 0.50 sends 400")


def test_floor_cost_counts_every_prediction_of_the_scope(warehouse):
    with report_connection(warehouse.warehouse.path) as con:
        assert floor_cost(con, warehouse.task_version, 0.5, 0.35, NIGHT.date()) == FloorCost(1000, 400, 300)
        assert floor_cost(con, warehouse.task_version, 0.5, None, None) == FloorCost(1500, 400, None)
        assert floor_cost(con, "another-version", 0.5, 0.35, None) == FloorCost(0, 0, 0)


def test_thresholds_without_audit_labels_says_there_are_none(tmp_path):
    path = tmp_path / "calscore.duckdb"
    spec = task(path, coverage_floor=0.5)
    with writer(path) as con:
        insert_predictions(con, spec, "run-1", np.r_[np.full(30, 0.3), np.full(70, 0.8)], np.full(100, 0.9), NIGHT)
    line = floor_of(thresholds_text(spec, 0.9))
    assert "no audit label has coverage below" not in line
    assert line.endswith("none: there are no audit labels (audit or random sample) to suggest a floor from; the "
                         "task file's 0.50 sends 30 of the 100 predictions to manual as off-format")
