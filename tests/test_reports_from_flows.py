"""Every report figure drawn from a warehouse the flows filled (two nights, an audit sample,
a recalibration), its numbers checked against figures recomputed here with plain SQL and
numpy; no figure may judge a row by a map fitted on it: the champion's fit rows count through
their stored out-of-fold predictions."""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flow_fixtures import task_toml, write_batch
from test_reports import PNG_MAGIC, ref_ece_mce

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def flows_filled(tmp_path_factory, tiny_model):
    from calscore.flows.labels import ingest_labels
    from calscore.flows.nightly import nightly_scoring
    from calscore.jobs.labels.audit import draw_audit_sample
    from calscore.jobs.spec import load_spec

    folder = tmp_path_factory.mktemp("flows-filled")
    task = task_toml(folder, tiny_model, min_labels=20, refit_after=100)
    _, truth = write_batch(folder, "night-001", 240)
    nightly_scoring(str(task))
    spec = load_spec(task)
    sample = draw_audit_sample(spec, 160, seed=5)
    ids = sample["id"].to_pylist()
    pq.write_table(pa.table({"id": ids, "label": [truth[i] for i in ids]}), folder / "labels.parquet")
    result = ingest_labels(str(task), file=str(folder / "labels.parquet"))
    assert result["recalibration"], "160 new labels must trigger a recalibration"
    _, truth2 = write_batch(folder, "night-002", 60, start=240)
    nightly_scoring(str(task))
    # the champion was fitted on the 160 labels but its certification slice: night 2's labels and that slice are the
    # ones it never saw
    pq.write_table(pa.table({"id": list(truth2), "label": list(truth2.values())}), folder / "night-2-labels.parquet")
    ingest_labels(str(task), file=str(folder / "night-2-labels.parquet"), trigger=False)
    return spec


def sql(spec, query):
    from calscore.jobs.warehouse.views import create_views

    con = duckdb.connect(str(spec.warehouse.path), read_only=True)
    try:
        create_views(con, temporary=True)
        return con.sql(query).to_arrow_table().to_pydict()
    finally:
        con.close()


def test_figures_match_the_warehouse_and_skip_fit_rows(flows_filled, tmp_path):
    from calscore.jobs.reports.bucket_chart import bucket_chart, bucket_stats
    from calscore.jobs.reports.html_report import write_report
    from calscore.jobs.reports.queries import load_counts, load_rows, report_connection
    from calscore.jobs.reports.reliability_diagram import reliability_diagram
    from calscore.jobs.reports.thresholds import threshold_table

    spec = flows_filled
    with report_connection(spec.warehouse.path) as con:
        rows = load_rows(con, spec.task_version)
    assert len(rows) == 300

    fit = sql(spec, "SELECT count(*) AS n FROM calibrator_fit_rows")["n"][0]
    # by hand: the deciding calibrator's own decision where it never saw the row, else its recipe's stored
    # out-of-fold prediction
    truth = sql(spec, """
        SELECT p.raw_confidence,
               CASE WHEN f.row_id IS NULL THEN coalesce(d.confidence, p.confidence) ELSE e.confidence END AS confidence,
               CASE WHEN f.row_id IS NULL THEN coalesce(d.label, p.label) ELSE e.label END = l.label AS correct,
               p.raw_label = l.label AS raw_correct, 1 / coalesce(l.inclusion_prob, 1) AS w
        FROM predictions p
        JOIN labels l ON l.row_id = p.row_id AND l.superseded_at IS NULL
        LEFT JOIN (SELECT * FROM decisions QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY decided_at DESC) = 1) d
          ON d.row_id = p.row_id
        LEFT JOIN calibrator_fit_rows f
          ON f.row_id = p.row_id AND f.version = coalesce(d.calibrator_version, p.calibrator_version)
        LEFT JOIN calibrators c ON c.version = coalesce(d.calibrator_version, p.calibrator_version)
        LEFT JOIN evidence e ON e.row_id = p.row_id AND e.recipe = regexp_replace(c.method, '^auto/', '')
        ORDER BY p.row_id""")
    held_out = len(truth["w"])
    assert 100 <= fit < 160 and held_out == 220 == int(rows.is_labeled.sum())  # every label is judged

    sel = rows.calibrated_labeled
    drawn = reliability_diagram(rows.raw_confidence[sel], rows.raw_correct[sel], rows.confidence[sel],
                                rows.is_correct[sel], tmp_path / "rel.png", weights=rows.label_weight[sel])
    assert drawn["path"].read_bytes()[:8] == PNG_MAGIC
    w = np.array(truth["w"])
    for name, conf, ok in (("raw", truth["raw_confidence"], truth["raw_correct"]),
                           ("calibrated", truth["confidence"], truth["correct"])):
        ece, mce, counts = ref_ece_mce(conf, ok, w)
        assert drawn[name]["n"] == held_out
        assert drawn[name]["ece"] == pytest.approx(ece, abs=1e-12) and drawn[name]["mce"] == pytest.approx(mce, abs=1e-12)
        assert [b["count"] for b in drawn[name]["bins"]] == counts

    # volumes are the decisions' buckets (counted in DuckDB, as the report does); a labeled row is judged in the
    # bucket its judged prediction lands in
    counts = dict(zip(*sql(spec, "SELECT bucket, count(*) AS n FROM current_decisions GROUP BY bucket").values()))
    with report_connection(spec.warehouse.path) as con:
        volumes = load_counts(con, spec.task_version).by_bucket()
    chart = bucket_chart(bucket_stats(spec.buckets, rows.bucket, rows.is_correct, rows.is_labeled, rows.label_weight,
                                      rows=volumes), tmp_path / "buckets.png")
    assert {b["bucket"]: b["rows"] for b in chart["buckets"] if b["rows"]} == counts
    assert sum(b["labeled"] for b in chart["buckets"]) == held_out

    table = threshold_table(rows.decision_confidence, ~rows.off_format, rows.is_audit_label, rows.is_correct,
                            rows.label_weight)
    at_half = sql(spec, "SELECT count(*) AS n FROM current_decisions WHERE decision_confidence >= 0.5"
                        " AND bucket_reason IS NULL")["n"][0]
    assert table[0]["threshold"] == 0.5 and table[0]["rows"] == at_half
    assert table[0]["audit_labels"] <= held_out

    html = write_report(spec, tmp_path / "report").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 4 and "300" in html
