"""The headline, the Markdown summary and `calscore status` never judge a calibrator by a map that saw the row:
the champion (or, before any champion, the raw scores) on every current sample label, its own prediction where it
was not fitted on the row, its recipe's out-of-fold prediction where it was; with n, 95% intervals, what each
figure rests on and which label designs.

The report fixture's Platt champion was fitted on the night-1 labels; here those rows are recorded as its fit rows
(as a recalibration does). Without evidence for them, the headline rests on the night-2 audit labels alone; with
out-of-fold predictions stored for them, on every audit label. Every figure is recomputed with numpy / sklearn.
"""
from __future__ import annotations

import html
import json
from datetime import datetime, timezone

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import norm
from sklearn.metrics import accuracy_score, log_loss

from calscore.calibration_store.document import load_document
from calscore.calibration_store.metrics import ece_bootstrap_ci
from calscore.calibration_store.store import document
from calscore.jobs.reports.html_report import report_markdown, write_report
from calscore.calibration_store.evidence import stable_folds
from calscore.calibration_store.registry import make_calibrator
from calscore.jobs.reports.report_data import heldout_sentence, load_summary_data, summary
from calscore.jobs.reports.status import task_status
from calscore.jobs.warehouse.connection import reader, writer
from report_fixtures import LABELS, fill_report_warehouse


def ref_ece(conf, correct, w, n_bins=15):
    """Equal-width (lower, upper] bins on [0, 1]: sum_b W_b / W |acc_b - conf_b|."""
    ids = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = ids == b
        if m.any():
            total += abs(np.sum(w[m] * (correct[m] - conf[m])))
    return total / w.sum()


def ref_wilson(p, n, z=norm.ppf(0.975)):
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def record_fit_rows(path, version, row_ids):
    with writer(path) as con:
        con.executemany("insert into calibrator_fit_rows (version, row_id) values (?, ?)",
                        [(version, r) for r in row_ids])


@pytest.fixture()
def warehouse(tmp_path):
    """The report fixture with the champion's fit rows recorded: the night-1 labels."""
    path = tmp_path / "calscore.duckdb"
    filled = fill_report_warehouse(path)
    r = filled["rows"]
    night1 = r["night"] == filled["nights"][0]
    filled["fit_rows"] = r["is_labeled"] & night1
    record_fit_rows(path, filled["champion"], r["row_id"][filled["fit_rows"]])
    filled["heldout"] = r["is_labeled"] & ~night1
    filled["path"] = path
    return filled


def expected(filled, mask, calibrated=True, out_of_fold=None):
    """Raw and the champion's figures on the rows in `mask`, recomputed with numpy and sklearn; `out_of_fold`
    (row index -> probabilities) replaces the champion's own prediction on those rows."""
    r = filled["rows"]
    x, y, w = r["logprobs"][mask], r["y"][mask], r["label_weight"][mask]
    out = {"raw": softmax(x, axis=1)}
    if calibrated:
        with reader(filled["path"]) as con:
            doc = document(con, filled["champion"])
        probs = load_document(doc, filled["task_version"]).predict_proba(r["logprobs"])
        for i, p in (out_of_fold or {}).items():
            probs[i] = p
        out["calibrated"] = probs[mask]
    figures = {}
    for name, p in out.items():
        conf, pred = p.max(axis=1), p.argmax(axis=1)
        correct = (pred == y).astype(float)
        acc = accuracy_score(y, pred, sample_weight=w)
        figures[name] = {"n": int(mask.sum()), "ece": ref_ece(conf, correct, w), "accuracy": acc,
                         "accuracy_ci": ref_wilson(acc, w.sum() ** 2 / np.square(w).sum()),
                         "nll": log_loss(y, p, sample_weight=w, labels=[0, 1]),
                         "ece_ci": ece_bootstrap_ci(p, y, w, n_boot=200)}
    return figures


def assert_figures(got, want):
    assert got["n"] == want["n"]
    for key in ("ece", "accuracy", "nll"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    np.testing.assert_allclose(got["accuracy_ci"], want["accuracy_ci"], atol=1e-9)
    np.testing.assert_allclose(got["ece_ci"], want["ece_ci"], atol=1e-12)
    for key in ("ece", "nll"):
        low, high = got[f"{key}_ci"]
        assert low <= high and np.isfinite([low, high]).all()


def sample_labels(filled):
    """The audit labels (the review-queue labels are convenience labels: never in the headline with audit ones)."""
    return filled["rows"]["is_audit_label"]


def store_out_of_fold(filled):
    """Out-of-fold Platt predictions for the champion's fit rows (the night-1 labels), as a recalibration stores
    them: fold by the stable hash, each fold predicted by Platt fitted by hand on the other folds."""
    r, spec = filled["rows"], filled["spec"]
    fit = np.flatnonzero(filled["fit_rows"])
    fold = stable_folds(spec.name, r["row_id"][fit].tolist(), 5)
    oof = {}
    for k in range(5):
        train, test = fit[fold != k], fit[fold == k]
        cal = make_calibrator("platt", list(LABELS)).fit(r["logprobs"][train], r["y"][train], r["label_weight"][train])
        oof.update(zip(test.tolist(), cal.predict_proba(r["logprobs"][test])))
    with writer(filled["path"]) as con:
        con.executemany(
            "insert into evidence values (?, 'platt', ?, ?, ?, ?, ?, 'auto', null)",
            [(filled["task_version"], r["row_id"][i], int(f), oof[i].tolist(), LABELS[int(oof[i].argmax())],
              float(oof[i].max())) for i, f in zip(fit.tolist(), fold.tolist())])
    return oof


def test_without_evidence_the_headline_is_the_champion_on_rows_it_never_saw(warehouse):
    s = summary(load_summary_data(warehouse["spec"]))
    h = s["heldout"]
    mask = warehouse["heldout"] & sample_labels(warehouse)
    want = expected(warehouse, mask)
    assert h["champion"] == warehouse["champion"] and h["n"] == int(mask.sum()) == 150
    assert_figures(h["raw"], want["raw"])
    assert_figures(h["calibrated"], want["calibrated"])
    assert h["basis"] == "150 never seen by the calibrator" and h["designs"] == {"audit": 150}
    sentence = s["heldout_sentence"]
    c, raw = h["calibrated"], h["raw"]
    assert "on 150 labels" in sentence and "(150 never seen by the calibrator)" in sentence
    assert (f"ECE {raw['ece']:.3f} [{raw['ece_ci'][0]:.3f}, {raw['ece_ci'][1]:.3f}] raw → {c['ece']:.3f} "
            f"[{c['ece_ci'][0]:.3f}, {c['ece_ci'][1]:.3f}] calibrated") in sentence
    assert f"accuracy {c['accuracy']:.3f} [{c['accuracy_ci'][0]:.3f}, {c['accuracy_ci'][1]:.3f}] calibrated" in sentence
    assert f"{c['nll']:.3f} [{c['nll_ci'][0]:.3f}, {c['nll_ci'][1]:.3f}] calibrated" in sentence


def test_fit_rows_count_through_their_out_of_fold_predictions_never_the_champion_s_own(warehouse):
    oof = store_out_of_fold(warehouse)
    h = summary(load_summary_data(warehouse["spec"]))["heldout"]
    mask = sample_labels(warehouse)
    want = expected(warehouse, mask, out_of_fold=oof)
    assert h["n"] == int(mask.sum()) == 300
    assert_figures(h["calibrated"], want["calibrated"])
    assert_figures(h["raw"], want["raw"])
    assert h["basis"] == ("150 out-of-fold (the champion's recipe, platt, fitted on the other folds), "
                          "150 never seen by the calibrator")
    # the champion's own predictions on its fit rows would have given another figure
    own = expected(warehouse, mask)
    assert h["calibrated"]["nll"] != pytest.approx(own["calibrated"]["nll"], abs=1e-6)
    # relabel every fit row wrongly: their out-of-fold predictions are judged against the new labels, as they must
    with writer(warehouse["path"]) as con:
        con.execute("update labels set label = case label when ? then ? else ? end where row_id in "
                    "(select row_id from calibrator_fit_rows where version = ?)",
                    [LABELS[0], LABELS[1], LABELS[0], warehouse["champion"]])
    after = summary(load_summary_data(warehouse["spec"]))["heldout"]
    assert after["calibrated"]["accuracy"] < h["calibrated"]["accuracy"]


def test_markdown_html_and_status_show_the_same_figures(warehouse, tmp_path):
    store_out_of_fold(warehouse)
    spec = warehouse["spec"]
    sentence = summary(load_summary_data(spec))["heldout_sentence"]
    assert f"- calibration, {sentence}\n" in report_markdown(spec)
    page = write_report(spec, tmp_path / "out").read_text(encoding="utf-8")
    assert f"Calibration, {html.escape(sentence)}." in page
    assert f"calibration, {sentence}" in task_status(spec).splitlines()
    # every figure says which labels it rests on: the 20 review-queue labels are left out, and said so
    assert "labels: audit and random-sample labels; 20 convenience label(s) left out" in sentence


def test_one_night_of_fit_rows_without_evidence_says_so(warehouse):
    s = summary(load_summary_data(warehouse["spec"], warehouse["nights"][0]))
    h = s["heldout"]
    assert h["raw"] is None and h["calibrated"] is None and h["n"] == 0
    assert s["heldout_sentence"].startswith(f"champion {warehouse['champion']}: no label it can be judged on")
    assert "run calscore recalibrate" in s["heldout_sentence"] and "ECE" not in s["heldout_sentence"]


def test_before_any_champion_raw_figures_on_every_sample_label(warehouse):
    """No calibrator was fitted on any label: the raw figures of every current audit label."""
    with writer(warehouse["path"]) as con:
        con.execute("delete from calibrator_fit_rows")
        con.execute("update calibrators set status = 'retired'")
    s = summary(load_summary_data(warehouse["spec"]))
    mask = sample_labels(warehouse)
    assert s["heldout"]["champion"] is None and s["heldout"]["calibrated"] is None
    assert_figures(s["heldout"]["raw"], expected(warehouse, mask, calibrated=False)["raw"])
    assert s["heldout_sentence"].startswith(f"raw scores, no calibrator yet, n={int(mask.sum())}: ECE ")


def test_convenience_labels_alone_come_with_a_warning(warehouse):
    with writer(warehouse["path"]) as con:
        con.execute("update labels set design = 'convenience', inclusion_prob = null")
    s = summary(load_summary_data(warehouse["spec"]))
    assert s["heldout"]["designs"] == {"convenience": s["heldout"]["n"]}
    assert "WARNING: only convenience labels" in s["heldout_sentence"]


def test_no_labels_at_all():
    h = {"champion": None, "n": 0, "raw": None, "calibrated": None, "labels": "no labels", "basis": "no labels"}
    assert heldout_sentence(h) == "no labeled rows yet: no calibration figure to show"
