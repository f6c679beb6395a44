"""Every analyst view and example query runs on a real warehouse file, returns rows with the columns the
documentation lists (docs/warehouse/index.md), and holds its invariants (one current decision per row, newest
decision wins, ...)."""
from __future__ import annotations

import re
from collections import Counter

import duckdb
import numpy as np
import pytest

from calscore.jobs.warehouse.views import create_views, creation_order, query_files, question, run_query, view_files, views
from calscore.jobs.warehouse.connection import writer
import doc_pages
from report_fixtures import fill_report_warehouse
from review_queue_oracle import OLD_REVIEW_NEXT, keep_queue, new_queue, old_queue


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "calscore.duckdb"
    truths = fill_report_warehouse(path)
    with writer(path) as con:  # stored views, as `calscore init` creates them
        create_views(con)
        keep_queue(con)  # the fixture writes its rows and labels straight into the tables, past the writers
    return path, truths


@pytest.fixture
def con(filled):
    c = duckdb.connect(str(filled[0]), read_only=True)
    yield c
    c.close()


def _documented_columns(name: str) -> list[str]:
    """The backticked names in the documented table row of a view or query, without the name itself."""
    text = doc_pages.QUERYING.read_text(encoding="utf-8")
    line = next((ln for ln in text.splitlines() if ln.startswith(f"| `{name}` |")), None)
    assert line is not None, f"{doc_pages.QUERYING} documents no `{name}`"
    columns_cell = line.rstrip(" |").rsplit(" | ", 1)[1]
    return re.findall(r"`([a-z_]+)`", columns_cell)


def _expected_columns(name: str) -> list[str]:
    documented = _documented_columns(name)
    if name == "predictions_current":  # "every column of `current_decisions`, then ..."
        return _documented_columns("current_decisions") + documented[1:]
    if name.startswith("labeled_"):  # a twin: "every column of `<its view>`"
        assert documented == [name.removeprefix("labeled_")]
        return _expected_columns(documented[0])
    return documented


def test_every_file_states_its_question():
    for name, sql in {**view_files(), **query_files()}.items():
        q = question(sql)
        assert q.endswith("?") and len(q) > 20, f"{name}: the first line must be a one-line question comment"
        assert "select * from final" in sql, f"{name}: shape it import CTEs -> logic -> final"


def test_views_are_created_in_dependency_order():
    order = creation_order(views())
    assert order.index("current_decisions") < order.index("predictions_current") < order.index("review_queue")
    assert order.index("current_labels") < order.index("labeled_predictions_current") < order.index("bucket_counts_nightly")
    assert order.index("labeled_decided_predictions") < order.index("labeled_predictions_current")


@pytest.mark.parametrize("name", sorted(views()))
def test_view_runs_with_documented_columns(con, name):
    rel = con.sql(f"select * from {name}")
    assert rel.columns == _expected_columns(name)
    assert len(rel.fetchall()) > 0


@pytest.mark.parametrize("name", sorted(query_files()))
def test_query_runs_with_documented_columns(con, name):
    table = run_query(con, name)
    assert table.column_names == _expected_columns(name)
    assert table.num_rows > 0


def test_temporary_views_on_a_read_only_connection(filled):
    path, truths = filled
    with duckdb.connect(str(path), read_only=True) as c:
        names = create_views(c, temporary=True)
        assert set(names) == set(view_files()) | {"labeled_decided_predictions", "labeled_predictions_current"}
        assert c.execute("select count(*) from predictions_current").fetchone()[0] == truths["n_predictions"]


def test_current_decisions_take_the_newest_decision(con, filled):
    _, t = filled
    rows = dict(zip(t["rows"]["row_id"], zip(t["rows"]["bucket"], t["rows"]["calibrator_version"],
                                            t["rows"]["decision_confidence"])))
    got = con.sql("select row_id, bucket, calibrator_version, decision_confidence, decided_by from current_decisions"
                  ).fetchall()
    assert len(got) == len({r[0] for r in got}) == t["n_predictions"]
    for row_id, bucket, version, conf, decided_by in got:
        assert (bucket, version) == rows[row_id][:2], row_id
        assert conf == pytest.approx(rows[row_id][2])
        assert decided_by == ("reapplied" if row_id.startswith("n1-") else "scoring")
    cal = t["calibrators"]
    by_version = Counter(v for _, _, v, _, _ in got)
    # Platt re-applied to 250 night-1 rows and scored night 2; temperature kept on the other 50
    assert by_version == {cal["platt"]: 250 + 300, cal["temperature"]: 50}


def test_current_labels_and_correctness(con, filled):
    _, t = filled
    r = t["rows"]
    labeled = con.sql("select row_id, true_label, label_weight, is_audit_label from current_labels").fetchall()
    assert len(labeled) == t["n_current_labels"]
    truth = {rid: (tl, w, a) for rid, tl, w, a in zip(r["row_id"], r["true_label"], r["label_weight"],
                                                       r["is_audit_label"]) if tl is not None}
    for row_id, true_label, weight, audit in labeled:
        assert (true_label, audit) == truth[row_id][::2] and weight == pytest.approx(truth[row_id][1])
    corrected = con.execute("select true_label from current_labels where row_id = ?",
                            [t["corrected_row"]]).fetchone()[0]
    assert corrected == r["true_label"][list(r["row_id"]).index(t["corrected_row"])]
    correct = con.execute("select count(*) filter (where is_correct), count(*) filter (where is_labeled)"
                          " from predictions_current").fetchone()
    mask = r["is_labeled"]
    assert correct == (int((r["label"][mask] == r["true_label"][mask]).sum()), int(mask.sum()))


def test_bucket_counts_nightly(con, filled):
    _, t = filled
    r = t["rows"]
    got = con.sql("select night, bucket, rows, share_of_night, labeled_rows from bucket_counts_nightly").fetchall()
    expected = Counter(zip(r["night"], r["bucket"]))
    assert {(n, b): rows for n, b, rows, _, _ in got} == dict(expected)
    for night in t["nights"]:
        assert sum(s for n, _, _, s, _ in got if n == night) == pytest.approx(1.0)
    labeled = Counter(zip(r["night"][r["is_labeled"]], r["bucket"][r["is_labeled"]]))
    assert {(n, b): k for n, b, _, _, k in got if k} == dict(labeled)


def test_review_queue(con, filled):
    _, t = filled
    r = t["rows"]
    waiting = (r["bucket"] == "review") & ~r["is_labeled"]
    expected = dict(zip(r["row_id"][waiting], r["decision_confidence"][waiting]))
    got = con.sql("select row_id, decision_confidence from review_queue order by decision_confidence, scored_at, row_id"
                  " limit 50").fetchall()
    assert con.execute("select count(*) from review_queue").fetchall()[0][0] == len(expected)
    assert [g[0] for g in got] == sorted(expected, key=lambda i: expected[i])[:50]  # least confident first
    assert all(conf == pytest.approx(expected[row_id]) for row_id, conf in got)
    next_rows = run_query(con, "review_next").to_pylist()
    assert [(n["queue_position"], n["row_id"]) for n in next_rows] == list(enumerate((g[0] for g in got), start=1))


def test_review_queue_and_review_next_return_the_rows_they_returned_before(con):
    """Before migration 013 the view decided at read time which rows wait and numbered them; same rows, same order."""
    assert new_queue(con) == old_queue(con)
    assert run_query(con, "review_next").to_pylist() == con.sql(OLD_REVIEW_NEXT).to_arrow_table().to_pylist()


def _documented_sql() -> list[str]:
    """Every SQL statement the documentation shows inline: `select ...` code spans and `duckdb ... -c "select ..."`."""
    text = doc_pages.text()
    spans = re.findall(r"`(select [^`]+)`", text, flags=re.IGNORECASE)
    commands = re.findall(r'duckdb [^\n]*-c "([^"]+)"', text)
    return sorted(set(spans + commands))


@pytest.mark.parametrize("sql", _documented_sql())
def test_every_query_the_documentation_shows_runs(con, sql):
    con.sql(sql).fetchall()


def test_calibrator_history_and_trend(con, filled):
    _, t = filled
    events = con.sql("select version, event, current_status from calibrator_history").fetchall()
    assert len(events) == t["n_events"]
    assert {(v, s) for v, _, s in events} == set(t["status"].items())
    trend = con.sql("select snapshot_id, scores, segment, ece, ece_change from calibration_trend"
                    " order by created_at").fetchall()
    assert len(trend) == t["n_snapshots"]
    assert all(c is None for s, *_, c in trend if s == "snap-1")
    first = {(sc, seg): e for s, sc, seg, e, _ in trend if s == "snap-1"}
    for s, sc, seg, e, change in trend:
        if s == "snap-2":
            assert change == pytest.approx(e - first[(sc, seg)])


def test_threshold_volume_query_matches_the_rows(con, filled):
    _, t = filled
    r = t["rows"]
    ok = r["bucket_reason"] != "off_format"
    for threshold, rows, audit_labels, accuracy in con.sql(
        "select threshold, rows, audit_labels, estimated_accuracy from (" + query_files()["threshold_volume"]
        .strip().rstrip(";") + ")").fetchall():
        above = ok & (r["decision_confidence"] >= threshold)
        audit = above & r["is_audit_label"]
        assert rows == int(above.sum()) and audit_labels == int(audit.sum())
        correct = (r["label"] == r["true_label"])[audit]
        assert accuracy == pytest.approx(np.average(correct, weights=r["label_weight"][audit]))


def test_the_documented_decision_counts_example_counts_every_current_decision(con):
    """docs/warehouse/index.md's example on decision_counts, against a count of current_decisions' rows."""
    example = "select bucket, sum(rows), sum(confidence_sum) / sum(rows) from decision_counts group by bucket"
    assert example in doc_pages.QUERYING.read_text(encoding="utf-8")
    got = sorted(con.sql(example).fetchall())
    want = sorted(con.sql("select bucket, count(*), avg(decision_confidence) from current_decisions group by bucket")
                  .fetchall())
    assert [g[:2] for g in got] == [w[:2] for w in want] and len(got) >= 3
    assert [g[2] for g in got] == pytest.approx([w[2] for w in want], rel=1e-12)
