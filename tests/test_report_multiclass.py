"""A three-label task end to end (real DuckDB, no model, no Prefect): rows scored overconfident, labels imported,
a temperature calibrator promoted and re-applied, new held-out labels, then `calscore report`. The class-wise
reliability and the confusion matrix on the page are checked against the champion's own probabilities, a hand
loop and scikit-learn's confusion_matrix."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import confusion_matrix

from calscore.calibration_store.document import load_document
from calscore.calibration_store.evidence import stable_folds
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.store import champion
from calscore.jobs.decisions import assign_buckets
from calscore.jobs.calibrators.recalibrate import run_recalibration
from calscore.jobs.labels.importing import import_labels
from calscore.jobs.reports.html_report import write_report
from calscore.jobs.reports.reliability_diagram import snapshot_diagram
from calscore.jobs.reports.report_data import load_report_data
from calscore.jobs.spec import load_spec
from calscore.jobs.warehouse.connection import reader, writer
import derived_tables
from test_report_pictures import hand_classwise_ece

LABELS = ("joy", "anger", "fear")
ROWS = 1200


def _task(folder: Path) -> Path:
    path = folder / "task.toml"
    path.write_text("""
name = "emotions"

[model]
hub_id = "example/tiny-emotions"
revision = "0123abcd"

[prompt]
template = "Text: {text}\\nEmotion:"

[labels]
joy = ["joy"]
anger = ["anger"]
fear = ["fear"]

[input]
location = "batches"

[warehouse]
path = "w.duckdb"

[calibration]
method = "temperature"
refit_after_new_labels = 100000
""", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiclass")
    spec = load_spec(_task(tmp))
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, size=ROWS)
    logits = 3.0 * (rng.normal(size=(ROWS, 3)) + 1.2 * np.eye(3)[y])  # overconfident: temperature ~3 fixes it
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    raw_idx = logp.argmax(axis=1)
    conf = np.exp(logp.max(axis=1))
    bucket, reason = assign_buckets(conf, np.ones(ROWS), spec.buckets, 0.0)
    ids = np.array([f"r{i:05d}" for i in range(ROWS)], dtype=object)
    at = datetime.now(timezone.utc) - timedelta(hours=1)  # recent: the new champion is re-applied to it
    names = np.array(LABELS, dtype=object)
    rows = pa.table({
        "task_version": [spec.task_version] * ROWS, "row_id": ids, "task_name": [spec.name] * ROWS,
        "run_id": ["run-1"] * ROWS, "batch_uri": ["b.parquet"] * ROWS, "batch_hash": ["h"] * ROWS,
        "model": ["m"] * ROWS, "text": [f"text {i}" for i in range(ROWS)],
        "label_logprobs": pa.array([list(zip(LABELS, map(float, row))) for row in logp],
                                   pa.map_(pa.string(), pa.float64())),
        "coverage": np.ones(ROWS), "total_probability": np.ones(ROWS), "raw_label": names[raw_idx],
        "raw_confidence": conf, "truncated": [False] * ROWS, "calibrator_version": pa.nulls(ROWS, pa.string()),
        "label": names[raw_idx], "confidence": pa.nulls(ROWS, pa.float64()), "bucket": list(bucket),
        "bucket_basis": ["raw"] * ROWS, "bucket_reason": list(reason), "night": [at.date()] * ROWS,
        "scored_at": pa.array([at] * ROWS, pa.timestamp("us", tz="UTC")),
        "written_at": pa.array([at] * ROWS, pa.timestamp("us", tz="UTC")),
    })
    with writer(spec.warehouse.path) as con:
        con.register("fixture_rows", rows)
        con.execute("INSERT INTO predictions BY NAME SELECT * FROM fixture_rows")
        derived_tables.rebuild(con)  # written directly, as no writer does
    order = rng.permutation(ROWS)
    first, later = order[:600], order[600:900]
    import_labels(spec, pa.table({"id": ids[first], "label": names[y[first]]}), "first", design="random")
    result = run_recalibration(spec, diagram=snapshot_diagram(spec))
    import_labels(spec, pa.table({"id": ids[later], "label": names[y[later]]}), "later", design="random")
    page = write_report(spec, tmp / "out")
    return {"spec": spec, "result": result, "page": page, "logp": logp, "y": y, "ids": ids, "later": later}


def test_champion_promoted_and_reapplied(reported):
    result = reported["result"]
    assert result["promoted"] and result["reapplied"] == ROWS


def test_classwise_and_confusion_of_the_report(reported):
    spec, logp, y, ids = reported["spec"], reported["logp"], reported["y"], reported["ids"]
    judged = load_report_data(spec).judged  # what the class-wise figures draw
    with reader(spec.warehouse.path) as con:
        doc = champion(con, spec.task_version)
    with reader(spec.warehouse.path) as con:
        fit = [r for (r,) in con.execute("select row_id from calibrator_fit_rows where version = ? order by row_id",
                                         [doc["version"]]).fetchall()]
    position = {r: i for i, r in enumerate(ids)}
    held = np.array([position[r] for r in judged.row_id])
    assert len(held) == 900  # every label: the fit rows through their out-of-fold predictions
    # by hand: the champion's own probabilities where it never saw the row, temperature scaling fitted on the
    # other folds (by the stable hash of task and row id) on its fit rows
    expected = load_document(doc, spec.task_version).predict_proba(logp[held])
    fit_at = np.array([position[r] for r in fit])
    fold = stable_folds(spec.name, fit, 5)
    for k in range(5):
        cal = make_calibrator("temperature", list(LABELS)).fit(logp[fit_at[fold != k]], y[fit_at[fold != k]])
        for i in fit_at[fold == k]:
            expected[held.tolist().index(i)] = cal.predict_proba(logp[[i]])[0]
    np.testing.assert_allclose(judged.calibrated, expected, atol=1e-9)
    assert list(judged.y) == list(y[held])

    page = reported["page"].read_text(encoding="utf-8")
    assert "<h2>Class-wise reliability and confusion matrix</h2>" in page
    assert '<img alt="class-wise reliability"' in page and '<img alt="confusion matrix"' in page
    assert "reliability diagram, positive class" not in page  # three labels: class-wise instead
    cm = confusion_matrix(y[held], expected.argmax(axis=1), labels=[0, 1, 2])
    for i, name in enumerate(LABELS):
        assert f'<td class="l">{name}</td><td>{cm[i, 0]}</td><td>{cm[i, 1]}</td><td>{cm[i, 2]}</td>' in page
    w = judged.weight
    cal = hand_classwise_ece(expected, y[held], w)
    raw = np.exp(logp[held])
    raw = raw / raw.sum(axis=1, keepdims=True)
    raw_eces = hand_classwise_ece(raw, y[held], w)
    assert f"<td>{np.mean(raw_eces):.3f}</td><td>{np.mean(cal):.3f}</td>" in page
    assert np.mean(cal) < np.mean(raw_eces)
