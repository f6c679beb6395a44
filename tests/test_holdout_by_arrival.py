"""Held-out labels are chosen by arrival (import time, then scoring time, then a seeded random order
stratified by label), and a promoted method is refitted on every label, the decision keeping its held-out figures."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import relplot

from calscore.calibration_store import metrics, promotion
from calscore.calibration_store.methods import CANDIDATES
from calscore.jobs.calibrators.recalibrate import load_labeled_rows, recalibration_markdown, run_recalibration
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer

LABELS = ("positive", "negative")
NIGHT1 = datetime(2025, 3, 1, 22, 0, tzinfo=timezone.utc)
IMPORT1 = datetime(2025, 3, 2, 12, 0, tzinfo=timezone.utc)


def make_spec(path: Path, method: str = "platt") -> TaskSpec:
    return TaskSpec.model_validate({
        "name": "holdout-demo",
        "model": {"hub_id": "example/tiny-sentiment", "revision": "0123abcd"},
        "prompt": {"template": "Review: {text}\nSentiment:"},
        "labels": {"positive": ["positive"], "negative": ["negative"]},
        "input": {"location": str(path.parent / "batches")},
        "warehouse": {"path": str(path)},
        "calibration": {"method": method, "folds": 3, "reapply_days": 0},
    })


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, P(positive)) of a model right about 75% of the time and 90-99% sure: calibration helps."""
    rng = np.random.default_rng(seed)
    y = np.repeat([1, 0], n // 2)  # negatives first, then positives (as rt-neg-*, rt-pos-* sort)
    right = rng.random(n) < 0.75
    predicted = np.where(right, y, 1 - y)
    conf = rng.uniform(0.9, 0.99, n)
    return y, np.where(predicted == 0, conf, 1 - conf)


def fill(spec: TaskSpec, ids, y, p_pos, imported_at, scored_at) -> None:
    """Predictions and current labels as the flows would have written them."""
    n = len(ids)
    logprobs = [[("positive", float(np.log(p))), ("negative", float(np.log1p(-p)))] for p in p_pos]
    names = np.array(LABELS, dtype=object)
    raw = names[np.where(np.asarray(p_pos) >= 0.5, 0, 1)]
    ts = lambda v: pa.array(list(v), pa.timestamp("us", tz="UTC"))  # noqa: E731
    predictions = pa.table({
        "task_version": [spec.task_version] * n, "row_id": list(ids), "task_name": [spec.name] * n,
        "run_id": ["run-score"] * n, "batch_uri": ["b"] * n, "batch_hash": ["h"] * n, "model": ["m"] * n,
        "text": ["t"] * n, "label_logprobs": pa.array(logprobs, pa.map_(pa.string(), pa.float64())),
        "coverage": [1.0] * n, "total_probability": [1.0] * n, "raw_label": list(raw),
        "raw_confidence": list(np.maximum(p_pos, 1 - np.asarray(p_pos))), "truncated": [False] * n,
        "calibrator_version": pa.nulls(n, pa.string()), "label": list(raw), "confidence": pa.nulls(n, pa.float64()),
        "bucket": ["review"] * n, "bucket_basis": ["raw"] * n, "bucket_reason": pa.nulls(n, pa.string()),
        "segment": pa.nulls(n, pa.string()), "metadata": pa.nulls(n, pa.string()),
        "scored_at": ts(scored_at), "written_at": ts(scored_at),
    })
    labels = pa.table({
        "task_name": [spec.name] * n, "row_id": list(ids), "label": list(names[np.asarray(y)]),
        "source": ["test"] * n, "inclusion_prob": pa.nulls(n, pa.float64()), "imported_at": ts(imported_at),
        "superseded_at": pa.nulls(n, pa.timestamp("us", tz="UTC")), "import_id": ["import"] * n,
    })
    with writer(spec.warehouse.path) as con:
        for table, data in (("predictions", predictions), ("labels", labels)):
            con.register("incoming", data)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
            con.unregister("incoming")


def one_import(tmp_path: Path, method: str = "platt", n: int = 600) -> TaskSpec:
    """All labels in one import, all rows scored in one night; ids sort negatives first, then positives."""
    spec = make_spec(tmp_path / "w.duckdb", method)
    y, p = overconfident(n, seed=5)
    ids = [f"rt-neg-{i:04d}" for i in range(n // 2)] + [f"rt-pos-{i:04d}" for i in range(n // 2)]
    fill(spec, ids, y, p, [IMPORT1] * n, [NIGHT1] * n)
    return spec


def q(spec: TaskSpec, sql: str):
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_one_import_holds_out_both_labels_in_proportion_with_a_recorded_reproducible_seed(tmp_path):
    spec = one_import(tmp_path)
    rows = load_labeled_rows(spec)
    kw = dict(labels=list(LABELS), task_version=spec.task_version, method="platt", scored_times=rows.scored_at)
    d = promotion.decide(rows.logprobs, rows.y, rows.imported_at, **kw)
    held = rows.y[d.holdout_index]
    assert d.n_holdout == 120 and abs(int((held == 0).sum()) - 60) <= 1  # not the 120 rt-pos-* of the id order
    assert d.figures()["holdout_order"] == {"by": list(promotion.ARRIVAL_ORDER), "seed": 0}
    again = promotion.decide(rows.logprobs, rows.y, rows.imported_at, **kw)
    assert np.array_equal(again.holdout_index, d.holdout_index)  # the recorded seed reproduces the slice
    other = promotion.decide(rows.logprobs, rows.y, rows.imported_at, holdout_seed=7, **kw)
    assert not np.array_equal(other.holdout_index, d.holdout_index)
    assert abs(int((rows.y[other.holdout_index] == 0).sum()) - 60) <= 1
    # through a recalibration: the seed and the order are in the decision event
    result = run_recalibration(spec)
    [(metrics,)] = q(spec, "SELECT metrics FROM calibrator_events WHERE event IN ('promoted', 'rejected')")
    assert json.loads(metrics)["holdout_order"]["seed"] == 0 and result["holdout_order"]["seed"] == 0


def test_the_newest_import_is_held_out_then_the_newest_scoring(tmp_path):
    spec = make_spec(tmp_path / "w.duckdb")
    y, p = overconfident(600, seed=6)
    order = np.random.default_rng(1).permutation(600)
    y, p = y[order], p[order]
    # ids sort opposite to arrival: the newest rows (a-*) come first in id order
    ids = [f"b-{i:04d}" for i in range(480)] + [f"a-{i:04d}" for i in range(120)]
    fill(spec, ids[:480], y[:480], p[:480], [IMPORT1] * 480, [NIGHT1] * 480)
    fill(spec, ids[480:], y[480:], p[480:], [IMPORT1 + timedelta(days=1)] * 120, [NIGHT1] * 120)
    rows = load_labeled_rows(spec)
    d = promotion.decide(rows.logprobs, rows.y, rows.imported_at, labels=list(LABELS), task_version=spec.task_version,
                         method="platt", scored_times=rows.scored_at)
    assert sorted(rows.row_ids[d.holdout_index]) == sorted(ids[480:])

    # one import, rows scored on two nights: the later night's rows are the newest
    spec2 = make_spec(tmp_path / "w2.duckdb")
    fill(spec2, ids[:480], y[:480], p[:480], [IMPORT1] * 480, [NIGHT1] * 480)
    fill(spec2, ids[480:], y[480:], p[480:], [IMPORT1] * 120, [NIGHT1 + timedelta(days=1)] * 120)
    rows = load_labeled_rows(spec2)
    d = promotion.decide(rows.logprobs, rows.y, rows.imported_at, labels=list(LABELS),
                         task_version=spec2.task_version, method="platt", scored_times=rows.scored_at)
    assert sorted(rows.row_ids[d.holdout_index]) == sorted(ids[480:])


def test_a_promoted_method_is_refitted_on_all_labels_and_the_decision_keeps_its_held_out_figures(tmp_path):
    spec = one_import(tmp_path)
    result = run_recalibration(spec)
    assert result["promoted"], result["decision"]
    [(doc, status)] = q(spec, f"SELECT document, status FROM calibrators WHERE version = '{result['version']}'")
    doc = json.loads(doc)
    assert status == "champion" and doc["n_labels"] == 600  # the stored champion saw every label
    refit = doc["heldout_metrics"]["refit_on_all_labels"]
    assert refit["n"] == 600 and refit["evaluated_challenger_n_train"] == 480
    assert doc["heldout_metrics"]["n"] == 120  # the figures are the evaluated challenger's, on rows it never saw
    [(metrics,)] = q(spec, "SELECT metrics FROM calibrator_events WHERE event = 'promoted'")
    metrics = json.loads(metrics)
    assert metrics["refit_on_all_labels"]["n"] == 600 and metrics["n_holdout"] == 120 and metrics["n_train"] == 480
    assert metrics["comparison"]["n"] == 120 and metrics["challenger"]["n"] == 120
    # the refit is what is stored: Platt fitted on all 600 labels
    rows = load_labeled_rows(spec)
    from calscore.calibration_store import load_document
    from calscore.calibration_store.registry import make_calibrator
    stored = load_document(doc, spec.task_version)
    direct = make_calibrator("platt", list(LABELS)).fit(rows.logprobs, rows.y)
    assert np.allclose(stored.predict_proba(rows.logprobs), direct.predict_proba(rows.logprobs))
    # no row is unseen by it: every label is a fit row, and no snapshot presents fit rows as held out
    [(n_fit,)] = q(spec, f"SELECT count(*) FROM calibrator_fit_rows WHERE version = '{result['version']}'")
    assert n_fit == 600 and "raw" not in result and "calibrated" not in result
    assert q(spec, "SELECT count(*) FROM reliability_snapshots") == [(0,)]
    # the next decision, with no new labels, cross-fits
    again = run_recalibration(spec)
    assert again["evaluation"] == "cross-fit" and "raw" not in again


def test_without_a_champion_the_snapshot_has_no_calibrated_row_showing_raw_figures(tmp_path):
    spec = make_spec(tmp_path / "w.duckdb")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 600)
    p_true = rng.uniform(0.05, 0.95, 600)
    y = np.where(rng.random(600) < p_true, 0, 1)  # raw P(positive) is calibrated: nothing to gain
    fill(spec, [f"r-{i:04d}" for i in range(600)], y, p_true, [IMPORT1] * 600, [NIGHT1] * 600)
    result = run_recalibration(spec)
    assert not result["promoted"], result["decision"]
    assert "calibrated" not in result and result["raw"]["n"] == 120
    assert q(spec, "SELECT DISTINCT scores FROM reliability_snapshots") == [("raw",)]
    # the snapshot keeps the smooth ECE (with its interval) and the debiased ECE: relplot's smECE on the held-out rows
    rows = load_labeled_rows(spec)
    held = promotion.decide(rows.logprobs, rows.y, rows.imported_at, labels=list(LABELS),
                            task_version=spec.task_version, method="platt", scored_times=rows.scored_at).holdout_index
    raw = metrics.raw_probs(rows.logprobs[held])
    confidence, correct = relplot.multiclass_logits_to_confidences(raw, rows.y[held], probs=True)
    [(smece, low, high, debiased)] = q(spec, "SELECT smece, smece_ci_low, smece_ci_high, debiased_ece FROM calibration_trend"
                                             " WHERE segment = 'all'")
    assert smece == pytest.approx(relplot.smECE(confidence, correct), abs=1e-12) and low <= smece <= high
    assert debiased == pytest.approx(metrics.debiased_ece(raw, rows.y[held]), abs=1e-12)
    assert "| calibrated | no champion |" in recalibration_markdown(spec, "run", result)
    assert "winner: the raw scores (challenger platt rejected)" in result["decision"]


@pytest.mark.parametrize("method", ["platt", "auto"])
def test_the_output_names_the_winner_and_every_candidates_held_out_figures(tmp_path, method):
    spec = one_import(tmp_path, method)
    result = run_recalibration(spec)
    assert result["promoted"], result["decision"]
    expected = tuple(CANDIDATES) if method == "auto" else ("platt",)
    candidates = result["candidates"]
    assert set(candidates) <= set(expected) and result["method"] in candidates
    if method == "auto":
        assert len(candidates) > 1
    line = result["decision"]  # what `labels import` prints when it starts the recalibration
    assert f"winner: {result['method']} (promoted over the raw scores)" in line
    assert "refitted on all 600 labels" in line
    for name, f in candidates.items():
        if "skipped" not in f:
            assert f"NLL {f['nll']:.4f}, ECE {f['ece']:.4f}" in line and f["n"] == 120
    assert f"raw scores NLL {result['baseline_metrics']['nll']:.4f}" in line
    md = recalibration_markdown(spec, "run", result)
    assert f"winner: **{result['method']}**" in md and "refitted on all 600 labels" in md
    for name in candidates:
        assert f"| {name}" in md


def test_the_task_file_sets_the_rows_a_comparison_needs(tmp_path):
    spec = one_import(tmp_path)  # 600 labels: 120 in the newest slice
    stricter = spec.model_copy(update={"calibration": spec.calibration.model_copy(update={"min_holdout": 150})})
    result = run_recalibration(stricter)
    assert result["evaluation"] == "cross-fit" and "(< min_holdout=150)" in result["decision"]
    assert result["min_holdout"] == 150 and "minimum 150 compared rows" in recalibration_markdown(stricter, "r", result)
