"""Bucket order and the coverage floor from labels: hand-computed small cases, then `calscore thresholds` and the
report on the report fixture's warehouse with its labels rewritten so that off-format rows beat `review`."""
from __future__ import annotations


import numpy as np
import pytest
from report_fixtures import fill_report_warehouse

from calscore.jobs.reports.bucket_order import FloorCost, floor_line, group_accuracy, order_warnings, suggest_floor
from calscore.jobs.reports.html_report import write_report
from calscore.jobs.reports.queries import report_connection
from calscore.jobs.reports.thresholds import thresholds_text
from calscore.jobs.spec import Bucket
from calscore.jobs.warehouse.connection import writer

BUCKETS = (Bucket(name="auto", min=0.9), Bucket(name="review", min=0.7), Bucket(name="manual", min=0.0))
COST = FloorCost(rows=1000, current=400, suggested=100)  # the line's cost clause: see test_coverage_floor_cost


def _rows(*groups):
    """(bucket, off_format, coverage, confidence, n correct, n labels) groups -> row arrays."""
    cols = {k: [] for k in ("bucket", "off_format", "coverage", "confidence", "correct")}
    for bucket, off, cov, conf, k, n in groups:
        cols["bucket"] += [bucket] * n
        cols["off_format"] += [off] * n
        cols["coverage"] += [cov] * n
        cols["confidence"] += [conf] * n
        cols["correct"] += [True] * k + [False] * (n - k)
    return {k: np.asarray(v, dtype=object if k == "bucket" else None) for k, v in cols.items()}


# AG-News-like: the off-format rows (the model answers off the label tokens) are more accurate than `review`.
# At the task's floor 0.5 every row with coverage < 0.5 is off-format, in `manual`, whatever its confidence.
AG = _rows(
    ("auto", False, 0.95, 0.95, 19, 20),   # 0.95
    ("review", False, 0.90, 0.80, 10, 20),  # 0.50
    ("manual", True, 0.12, 0.95, 2, 10),    # coverage 0.12: 0.2
    ("manual", True, 0.32, 0.95, 20, 20),   # coverage 0.32: 1.0
    ("manual", True, 0.42, 0.95, 9, 10),    # coverage 0.42: 0.9
)


def test_wilson_lower_bounds_by_hand():
    # z = 1.959964; Wilson low = (p + z^2/2n - z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    assert group_accuracy([True] * 31 + [False] * 9, None)["low"] == pytest.approx(0.6250, abs=5e-4)  # 0.775, n 40
    assert group_accuracy([True] * 22 + [False] * 8, None)["low"] == pytest.approx(0.5555, abs=5e-4)  # 0.733, n 30
    assert group_accuracy([True] * 3, None)["low"] == pytest.approx(0.4385, abs=5e-4)                 # 1.0, n 3


def test_off_format_rows_more_accurate_than_review_warn():
    warnings = order_warnings(BUCKETS, AG["bucket"], AG["off_format"], AG["correct"])
    # off-format 31/40 = 0.775, Wilson low 0.625 > review 0.50, not auto's 0.95; `manual` holds only these rows,
    # so it is not named a second time
    assert [(w["upper"], w["lower"]) for w in warnings] == [("review", "off-format rows (in manual)")]
    line = warnings[0]["text"]
    assert line.startswith("warning: bucket order: off-format rows (in manual) are more accurate than review")
    assert "accuracy 0.775 (n=40, 95% Wilson lower bound 0.625)" in line and "review accuracy 0.500 (n=20)" in line
    assert "\n" not in line


def test_order_fine_gives_no_warning():
    rows = _rows(("auto", False, 0.95, 0.95, 19, 20), ("review", False, 0.9, 0.8, 14, 20),
                 ("manual", False, 0.9, 0.3, 3, 10), ("manual", True, 0.3, 0.9, 2, 10))
    assert order_warnings(BUCKETS, rows["bucket"], rows["off_format"], rows["correct"]) == []


def test_a_few_lucky_labels_below_do_not_warn():
    # manual 3/3 right (point 1.0) but its Wilson low 0.4385 is under review's 0.60: not evidence
    rows = _rows(("auto", False, 0.95, 0.95, 19, 20), ("review", False, 0.9, 0.8, 12, 20),
                 ("manual", False, 0.9, 0.3, 3, 3))
    assert order_warnings(BUCKETS, rows["bucket"], rows["off_format"], rows["correct"]) == []


def test_manual_with_on_format_rows_is_compared_as_a_bucket_too():
    rows = _rows(("review", False, 0.9, 0.8, 5, 20), ("manual", False, 0.9, 0.3, 9, 10),
                 ("manual", True, 0.3, 0.9, 30, 30))
    found = order_warnings(BUCKETS, rows["bucket"], rows["off_format"], rows["correct"])
    # manual 39/40 and off-format 30/30 both far above review's 0.25
    assert [(x["upper"], x["lower"]) for x in found] == [("review", "manual"),
                                                         ("review", "off-format rows (in manual)")]


def test_the_comparison_is_weighted():
    # review: 10 right at weight 1, 10 wrong at weight 3 -> 10/40 = 0.25 (unweighted 0.5);
    # manual 6/10 at weight 1: Wilson low 0.3127 -> above 0.25, not above 0.5
    rows = _rows(("review", False, 0.9, 0.8, 10, 20), ("manual", False, 0.9, 0.3, 6, 10))
    w = np.array([1.0] * 10 + [3.0] * 10 + [1.0] * 10)
    found = order_warnings(BUCKETS, rows["bucket"], rows["off_format"], rows["correct"], w)
    assert [(x["upper"], x["lower"]) for x in found] == [("review", "manual")]
    assert "review accuracy 0.250 (n=20, effective n 16.0)" in found[0]["text"]
    assert order_warnings(BUCKETS, rows["bucket"], rows["off_format"], rows["correct"]) == []


def test_suggested_floor_on_the_ag_news_like_case():
    s = suggest_floor(BUCKETS, AG["coverage"], AG["confidence"], AG["correct"])
    # 0.00-0.10: nothing below; 0.15-0.30: the 10 rows at 0.12 (0.2) vs review 0.5 pass;
    # 0.35: 22/30 = 0.733, Wilson low 0.5555 > 0.5 fails and ends the scan
    assert s["floor"] == 0.30 and s["bucket"] == "review" and s["any_below"]
    assert s["stopped"]["floor"] == 0.35
    assert s["stopped"]["off_format"]["accuracy"] == pytest.approx(22 / 30)
    assert s["stopped"]["kept"]["accuracy"] == pytest.approx(0.5) and s["stopped"]["kept"]["n"] == 20
    line = floor_line(s, 0.5, COST)
    assert line.startswith("coverage floor from labels (task file: 0.50; a suggestion, the task file is not "
                           "changed): 0.30,")
    assert "at 0.35: coverage below it accuracy 0.733 (n=30, 95% Wilson lower bound 0.556) vs review" in line


def test_rows_regained_below_the_floor_join_the_bucket_their_confidence_says():
    # at floor 0.35 a row with coverage 0.4 and confidence 0.8 is back in `review`, so it counts there
    rows = _rows(("review", False, 0.9, 0.8, 10, 20), ("manual", True, 0.4, 0.8, 10, 10),
                 ("manual", True, 0.2, 0.8, 0, 10))
    s = suggest_floor(BUCKETS, rows["coverage"], rows["confidence"], rows["correct"])
    # 0.25-0.40: the 0.2 rows (0 right) below, review 20 + 10 -> 0.667 kept; 0.45: 10/20 = 0.5 below, Wilson low
    # 0.299 < review's 0.5: it passes up to 0.90
    assert s["floor"] == 0.90 and s["stopped"] is None
    assert ("0.90: at no candidate from 0.00 up to it the rows below the floor were more accurate than those left "
            "in review (their 95% Wilson lower bound above its accuracy; audit labels, weighted); 0.90 would send 100 "
            "of the 1,000 predictions to manual as off-format") in floor_line(s, 0.5, COST)


def test_no_label_below_any_candidate_says_so():
    rows = _rows(("auto", False, 0.95, 0.95, 5, 5), ("review", False, 0.92, 0.8, 3, 5))
    s = suggest_floor(BUCKETS, rows["coverage"], rows["confidence"], rows["correct"])
    assert s["floor"] is None and not s["any_below"]
    assert "none: no audit label has coverage below 0.90: the labels cannot choose a floor; the task file's 0.50 " \
           "sends 400 of the 1,000 predictions" in floor_line(s, 0.5, FloorCost(rows=1000, current=400, suggested=None))


# -- on a warehouse ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory):
    """The report fixture's warehouse with its audit labels rewritten: every off-format row right, every
    `review` and `manual_check` row wrong (the fixture's off-format rows have coverage 0.2 to 0.45)."""
    path = tmp_path_factory.mktemp("bucket-order") / "calscore.duckdb"
    filled = fill_report_warehouse(path)
    spec = filled["spec"]
    with report_connection(path) as con:
        rows = con.execute(
            "select row_id, label, bucket, coalesce(bucket_reason = 'off_format', false) from predictions_current"
            " where task_version = ? and is_audit_label", [spec.task_version]).fetchall()
    other = {"positive": "negative", "negative": "positive"}
    with writer(path) as con:
        for row_id, label, bucket, off in rows:
            if off or bucket in ("review", "manual_check"):
                new = label if off else other[label]
                con.execute("update labels set label = ? where task_name = ? and row_id = ? and superseded_at is null",
                            [new, spec.name, row_id])
    return filled


def test_thresholds_text_shows_the_warning_and_the_floor(rewritten):
    spec = rewritten["spec"]
    text = thresholds_text(spec, 0.85)
    lines = text.splitlines()
    warnings = [x for x in lines if x.startswith("warning: bucket order: off-format rows (in manual) are more "
                                                  "accurate than review above them")]
    assert len(warnings) == 1 and "accuracy 1.000" in warnings[0] and "review accuracy 0.000" in warnings[0]
    floor = [x for x in lines if x.startswith("coverage floor from labels (task file: 0.50;")]
    assert len(floor) == 1
    suggested = float(floor[0].split("changed): ")[1][:4])
    assert suggested < 0.5
    assert text.index(floor[0]) < text.index("threshold     rows")  # above the table


def test_the_report_bucket_section_shows_the_warning(rewritten, tmp_path):
    spec = rewritten["spec"]
    page = write_report(spec, tmp_path).read_text(encoding="utf-8")
    section = page.split("<h2>Decision buckets</h2>")[1].split("<h2>")[0]
    assert "warning: bucket order: off-format rows (in manual) are more accurate than review" in section


def test_the_unchanged_fixture_has_a_floor_line_and_no_order_warning(tmp_path):
    path = tmp_path / "calscore.duckdb"
    spec = fill_report_warehouse(path)["spec"]
    text = thresholds_text(spec, 0.85)
    assert "warning: bucket order" not in text
    assert "coverage floor from labels (task file: 0.50;" in text
