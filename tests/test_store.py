"""Calibrator documents and the warehouse store, on a real migrated DuckDB file."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from calscore.jobs.calibrators.champion import load_champion
from calscore.jobs.warehouse.connection import writer
from calscore.calibration_store import (
    DocumentError,
    apply_to_table,
    build_document,
    champion,
    export_document,
    import_document,
    list_calibrators,
    list_events,
    load_document,
    load_version,
    make_calibrator,
    save_calibrator,
    set_champion,
)
from calscore.calibration_store.document import content_version
from synthetic_scores import synthetic_scores

LABELS = ["positive", "negative"]
TV = "tv-0001"
WINDOW = ("2026-01-01T00:00:00+00:00", "2026-01-31T23:59:59+00:00")


@pytest.fixture(scope="module")
def scores():
    return synthetic_scores(600, 2, seed=21)


def make_doc(scores, method="platt", task_version=TV, **params):
    cal = make_calibrator(method, LABELS, **params).fit(scores.logprobs, scores.y)
    return cal, build_document(cal, "sentiment", task_version, WINDOW, 600, {"nll": 0.41, "ece": 0.02})


# --- documents -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["platt", "isotonic", "temperature", "vector", "beta", "histogram", "auto"])
def test_document_loads_back_to_identical_predictions(scores, method):
    cal, doc = make_doc(scores, method, **({"folds": 3} if method == "auto" else {}))
    assert doc["schema_version"] == 1 and doc["method"] == method and doc["labels"] == LABELS
    assert doc["n_labels"] == 600 and doc["fit_window"] == {"start": WINDOW[0], "end": WINDOW[1]}
    assert doc["version"] == content_version(doc)
    loaded = load_document(json.loads(json.dumps(doc)), TV)
    assert np.array_equal(loaded.predict_proba(scores.logprobs), cal.predict_proba(scores.logprobs))


def test_the_version_is_the_content(scores):
    _, doc = make_doc(scores)
    _, same = make_doc(scores)
    assert doc["version"] == same["version"]  # same fit, same document
    _, other = make_doc(scores, "temperature")
    assert other["version"] != doc["version"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["params"]["models"][0].update(intercept=d["params"]["models"][0]["intercept"] + 0.5),
        lambda d: d["heldout_metrics"].update(nll=0.01),
        lambda d: d.update(task_version="tv-other"),
        lambda d: d.update(labels=["negative", "positive"]),
        lambda d: d["fit_window"].update(end="2027-01-01T00:00:00+00:00"),
    ],
)
def test_tampered_documents_are_refused(scores, tamper):
    _, doc = make_doc(scores)
    edited = json.loads(json.dumps(doc))
    tamper(edited)
    with pytest.raises(DocumentError, match="does not match its content"):
        load_document(edited, edited["task_version"])


def test_wrong_task_version_unknown_schema_and_odd_fields_are_refused(scores):
    _, doc = make_doc(scores)
    with pytest.raises(DocumentError, match="never applied to another task version"):
        load_document(doc, "tv-9999")
    with pytest.raises(DocumentError, match="schema_version"):
        load_document({**doc, "schema_version": 3}, TV)
    extra = {**doc, "pickle": "gASV"}
    extra["version"] = content_version(extra)
    with pytest.raises(DocumentError, match="unexpected"):
        load_document(extra, TV)
    with pytest.raises(DocumentError, match="not valid JSON"):
        load_document("{not json", TV)
    assert issubclass(DocumentError, ValueError)


def test_a_rehashed_document_with_a_broken_calibrator_is_still_refused(scores):
    _, doc = make_doc(scores)
    broken = json.loads(json.dumps(doc))
    broken["params"]["models"] = []
    broken["version"] = content_version(broken)
    with pytest.raises(DocumentError, match="invalid calibrator"):
        load_document(broken, TV)


def test_build_document_checks_its_inputs(scores):
    cal, _ = make_doc(scores)
    with pytest.raises(ValueError, match="JSON-safe"):
        build_document(cal, "sentiment", TV, WINDOW, 600, {"nll": float("nan")})
    with pytest.raises(ValueError, match="starts after it ends"):
        build_document(cal, "sentiment", TV, (WINDOW[1], WINDOW[0]), 600, {})
    with pytest.raises(ValueError, match="ISO 8601"):
        build_document(cal, "sentiment", TV, ("yesterday", WINDOW[1]), 600, {})
    with pytest.raises(ValueError, match="n_labels"):
        build_document(cal, "sentiment", TV, WINDOW, 0, {})


def test_export_and_import_files_for_review(scores, tmp_path):
    cal, doc = make_doc(scores, "beta")
    path = export_document(doc, tmp_path / "review" / f"{doc['version']}.json")
    assert import_document(path) == doc
    assert np.array_equal(load_document(import_document(path, TV), TV).predict_proba(scores.logprobs),
                          cal.predict_proba(scores.logprobs))
    with pytest.raises(DocumentError, match="task version"):
        import_document(path, "tv-9999")
    text = path.read_text().replace('"n_labels": 600', '"n_labels": 6000')
    path.write_text(text)
    with pytest.raises(DocumentError, match="does not match"):
        import_document(path)


# --- the store -------------------------------------------------------------------------------


def test_save_promote_and_load_the_champion(scores, empty_warehouse):
    cal_a, doc_a = make_doc(scores, "platt")
    cal_b, doc_b = make_doc(scores, "isotonic")
    with writer(empty_warehouse) as con:
        assert champion(con, TV) is None
        va = save_calibrator(con, doc_a, actor="run-1")
        assert save_calibrator(con, doc_a, actor="run-1") == va  # idempotent
        vb = save_calibrator(con, doc_b, actor="run-2")
        assert set_champion(con, va, actor="run-1", reason="first") is None
        assert set_champion(con, vb, actor="run-2", reason="better") == va
        rows = {r["version"]: r for r in list_calibrators(con, task_version=TV)}
        events = [(e["version"], e["event"], e["actor"]) for e in list_events(con, TV)]
        stored = con.execute("SELECT document FROM calibrators WHERE version = ?", [vb]).fetchone()[0]
    assert rows[va]["status"] == "retired" and rows[vb]["status"] == "champion"
    assert rows[va]["method"] == "platt" and rows[vb]["heldout_metrics"] == {"nll": 0.41, "ece": 0.02}
    assert events == [
        (va, "fitted", "run-1"),
        (vb, "fitted", "run-2"),
        (va, "promoted", "run-1"),
        (va, "retired", "run-2"),
        (vb, "promoted", "run-2"),
    ]
    assert json.loads(stored) == doc_b

    loaded = load_champion(empty_warehouse, TV)
    assert loaded is not None
    cal, doc = loaded
    assert doc == doc_b
    assert np.array_equal(cal.predict_proba(scores.logprobs), cal_b.predict_proba(scores.logprobs))
    assert load_champion(empty_warehouse, "tv-other") is None
    with duckdb.connect(str(empty_warehouse), read_only=True) as con:
        assert np.array_equal(load_version(con, va, TV).predict_proba(scores.logprobs), cal_a.predict_proba(scores.logprobs))
        with pytest.raises(DocumentError, match="task version"):
            load_version(con, va, "tv-other")


def test_exactly_one_champion_per_task_version(scores, empty_warehouse):
    docs = [make_doc(scores, m)[1] for m in ("platt", "temperature", "vector")]
    _, other_task = make_doc(scores, "platt", task_version="tv-0002")
    with writer(empty_warehouse) as con:
        versions = [save_calibrator(con, d, actor="t") for d in docs]
        v_other = save_calibrator(con, other_task, actor="t")
        set_champion(con, v_other, actor="t")
        for v in versions + versions[::-1]:
            set_champion(con, v, actor="t")
            counts = dict(con.execute(
                "SELECT task_version, count(*) FROM calibrators WHERE status = 'champion' GROUP BY 1").fetchall())
            assert counts == {TV: 1, "tv-0002": 1}
            assert champion(con, TV)["version"] == v
        with pytest.raises(ValueError, match="no calibrator"):
            set_champion(con, "0123456789abcdef", actor="t")


def test_a_document_edited_inside_the_warehouse_is_refused(scores, empty_warehouse):
    _, doc = make_doc(scores)
    with writer(empty_warehouse) as con:
        v = save_calibrator(con, doc, actor="t")
        set_champion(con, v, actor="t")
        edited = json.loads(json.dumps(doc))
        edited["params"]["models"][0]["slope"] *= 2
        con.execute("UPDATE calibrators SET document = ? WHERE version = ?", [json.dumps(edited), v])
    with pytest.raises(DocumentError, match="does not match"):
        load_champion(empty_warehouse, TV)


def test_store_changes_join_the_caller_s_transaction(scores, empty_warehouse):
    _, doc = make_doc(scores)
    with writer(empty_warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        save_calibrator(con, doc, actor="t")
        con.execute("ROLLBACK")
        assert list_calibrators(con) == [] and list_events(con, TV) == []


def test_save_refuses_a_tampered_document(scores, empty_warehouse):
    _, doc = make_doc(scores)
    with writer(empty_warehouse) as con:
        with pytest.raises(DocumentError):
            save_calibrator(con, {**doc, "n_labels": 1}, actor="t")
        with pytest.raises(ValueError, match="actor"):
            save_calibrator(con, doc, actor=" ")


# --- applying to stored raw scores -----------------------------------------------------------


def test_apply_to_an_arrow_table_and_a_polars_frame_from_the_warehouse(scores):
    cal, _ = make_doc(scores, "vector")
    n = 50
    con = duckdb.connect()
    con.execute("CREATE TABLE p (row_id VARCHAR, label_logprobs MAP(VARCHAR, DOUBLE))")
    # keys in varying order: the map is read by label name, not position
    rows = [
        (f"r{i}", {"negative": float(scores.logprobs[i, 1]), "positive": float(scores.logprobs[i, 0])}
         if i % 2 else {"positive": float(scores.logprobs[i, 0]), "negative": float(scores.logprobs[i, 1])})
        for i in range(n)
    ]
    con.executemany("INSERT INTO p VALUES (?, ?)", rows)
    expected = cal.predict_proba(scores.logprobs[:n])
    query = con.sql("SELECT * FROM p ORDER BY CAST(substr(row_id, 2) AS INTEGER)")

    out = apply_to_table(cal, query.to_arrow_table(), labels=LABELS)
    assert isinstance(out, pa.Table)
    assert out.column_names == ["row_id", "label_logprobs", "calibrated_label", "calibrated_confidence",
                                "calibrated_prob_positive", "calibrated_prob_negative"]
    assert np.array_equal(out["calibrated_prob_positive"].to_numpy(), expected[:, 0])
    assert np.array_equal(out["calibrated_confidence"].to_numpy(), expected.max(axis=1))
    assert out["calibrated_label"].to_pylist() == [LABELS[i] for i in expected.argmax(axis=1)]

    frame = apply_to_table(cal, query.pl())
    assert type(frame).__module__.startswith("polars")
    assert np.array_equal(frame["calibrated_prob_negative"].to_numpy(), expected[:, 1])
    again = apply_to_table(cal, out)  # re-applying replaces, not duplicates
    assert again.column_names == out.column_names


def test_apply_refuses_rows_it_cannot_read(scores):
    cal, _ = make_doc(scores, "platt")
    typ = pa.map_(pa.string(), pa.float64())
    missing = pa.table({"label_logprobs": pa.array([[("positive", -0.1), ("negative", -2.0)], [("positive", -0.2)]], typ)})
    with pytest.raises(ValueError, match="row 1 gives label 'negative' 0 times"):
        apply_to_table(cal, missing)
    null = pa.table({"label_logprobs": pa.array([[("positive", -0.1), ("negative", -2.0)], None], typ)})
    with pytest.raises(ValueError, match="null in row 1"):
        apply_to_table(cal, null)
    with pytest.raises(ValueError, match="differ from the calibrator"):
        apply_to_table(cal, missing, labels=["yes", "no"])
    with pytest.raises(ValueError, match="no 'label_logprobs' column"):
        apply_to_table(cal, pa.table({"x": [1]}))
    positional = pa.table({"label_logprobs": pa.array([[-0.2, -2.0], [-1.5, -0.3]], pa.list_(pa.float64()))})
    assert apply_to_table(cal, positional)["calibrated_label"].to_pylist() == [
        LABELS[i] for i in cal.predict(np.array([[-0.2, -2.0], [-1.5, -0.3]]))
    ]
