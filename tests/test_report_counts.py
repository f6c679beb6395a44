"""The report counted in DuckDB gives the figures it gave row by row: buckets, segments and thresholds from
`load_counts` plus the labeled rows equal the same functions on every row, on a synthetic warehouse whose
decision confidences include values exactly on (and one step either side of) the thresholds; and the label
budget's held-out set stops growing with the labels."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from calscore.jobs.reports import queries
from calscore.jobs.reports.bucket_chart import bucket_stats
from calscore.jobs.reports.label_budget import label_budget
from calscore.jobs.reports.report_data import task_buckets, task_segments, task_thresholds
from calscore.jobs.reports.segments import segment_stats
from calscore.jobs.reports.thresholds import THRESHOLDS, threshold_table
from calscore.jobs.warehouse.views import query_files
import derived_tables
from synthetic_scores import synthetic_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synthetic_warehouse import build_warehouse  # noqa: E402  (bench/ is not a package)

# every threshold the report and threshold_volume use, exactly, and the doubles just below and above it
EDGES = sorted({e for t in (*THRESHOLDS, *np.arange(50, 100, 5) / 100)
                for e in (t, math.nextafter(t, 0.0), math.nextafter(t, 1.0))})


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    spec = build_warehouse(tmp_path_factory.mktemp("counts"), 6_000, labeled_share=0.2)
    with duckdb.connect(str(spec.warehouse.path)) as con:  # calibrated rows: their confidence is what is cut
        con.execute("update predictions set confidence = list_extract(?, cast(hash(row_id) % ? as integer) + 1)"
                    " where bucket_basis = 'calibrated' and reapplied_at is null", [EDGES, len(EDGES)])
        derived_tables.rebuild(con)
    return spec


@pytest.fixture(scope="module")
def loaded(spec):
    with queries.report_connection(spec.warehouse.path) as con:
        yield (queries.load_counts(con, spec.task_version), queries.load_rows(con, spec.task_version),
               queries.load_rows(con, spec.task_version, labeled_only=True), con)


def test_the_warehouse_holds_confidences_on_the_edges(loaded):
    _, rows, _, _ = loaded
    assert np.isin(rows.decision_confidence, EDGES).sum() > 1000


def test_only_labeled_rows_are_read(loaded):
    counts, rows, labeled, _ = loaded
    assert counts.total == len(rows) == 6_000
    assert len(labeled) == int(rows.is_labeled.sum()) < len(rows) / 4
    assert labeled.is_labeled.all()


def test_thresholds_from_counts_equal_row_by_row(loaded):
    counts, rows, labeled, _ = loaded
    every_row = threshold_table(rows.decision_confidence, ~rows.off_format, rows.is_audit_label, rows.is_correct,
                                rows.label_weight)
    assert task_thresholds(counts, labeled) == every_row
    assert len({r["rows"] for r in every_row}) == len(THRESHOLDS)  # the edges make every step count


def test_buckets_and_segments_from_counts_equal_row_by_row(spec, loaded):
    counts, rows, labeled, _ = loaded
    assert task_buckets(spec, counts, labeled) == bucket_stats(spec.buckets, rows.bucket, rows.is_correct,
                                                               rows.is_labeled, rows.label_weight)
    assert task_segments(spec, counts, labeled) == segment_stats(rows.segment, rows.confidence, rows.is_correct,
                                                                 rows.is_labeled, rows.bucket, spec.buckets,
                                                                 rows.label_weight)


def test_threshold_volume_query_on_the_edges(loaded):
    _, rows, _, con = loaded
    ok = ~rows.off_format
    got = con.sql(query_files()["threshold_volume"].strip().rstrip(";")).fetchall()
    assert [t for _, _, t, *_ in got] == list(np.arange(50, 100, 5) / 100)
    for _, _, threshold, n, audit_labels, _ in got:
        above = ok & (rows.decision_confidence >= threshold)
        assert (n, audit_labels) == (int(above.sum()), int((above & rows.is_audit_label).sum()))


def test_the_label_budget_holds_out_a_bounded_set():
    """Every fit of the curve is scored on the held-out set: 30% of the labels, but never more than the cap."""
    s = synthetic_scores(3_000, 2, seed=5)
    capped = label_budget(s.logprobs, s.y, ["a", "b"], "temperature", sizes=(100,), max_holdout=500)
    assert (capped["holdout_n"], capped["pool_n"]) == (500, 2_500)
    assert label_budget(s.logprobs, s.y, ["a", "b"], "temperature", sizes=(100,))["holdout_n"] == 900
