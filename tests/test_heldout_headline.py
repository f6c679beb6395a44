"""The headline, the Markdown summary and `calscore status` show only held-out evidence: the champion (or, before
any champion, the raw scores) on the labels it was not fitted on, with n and 95% intervals; fit rows never enter.

The report fixture's Platt champion was fitted on the night-1 labels; here those rows are recorded as its fit rows
(as a recalibration does), so its held-out rows are the night-2 audit labels. Every figure is recomputed with
numpy / sklearn on those rows alone.
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
from calscore.jobs.reports.report_data import NO_HELDOUT, heldout_sentence, load_summary_data, summary
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
    record_fit_rows(path, filled["champion"], r["row_id"][r["is_labeled"] & night1])
    filled["heldout"] = r["is_labeled"] & ~night1
    filled["path"] = path
    return filled


def expected(filled, mask, calibrated=True):
    """Raw and the champion's figures on the rows in `mask`, recomputed with numpy and sklearn."""
    r = filled["rows"]
    x, y, w = r["logprobs"][mask], r["y"][mask], r["label_weight"][mask]
    out = {"raw": softmax(x, axis=1)}
    if calibrated:
        with reader(filled["path"]) as con:
            doc = document(con, filled["champion"])
        out["calibrated"] = load_document(doc, filled["task_version"]).predict_proba(x)
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


def test_headline_is_the_champion_on_held_out_rows_only(warehouse):
    s = summary(load_summary_data(warehouse["spec"]))
    h = s["heldout"]
    want = expected(warehouse, warehouse["heldout"])
    assert h["champion"] == warehouse["champion"] and h["n"] == int(warehouse["heldout"].sum()) == 150
    assert_figures(h["raw"], want["raw"])
    assert_figures(h["calibrated"], want["calibrated"])
    # the fit rows would have given other figures: the headline is not the all-labels figure
    everything = expected(warehouse, warehouse["rows"]["is_labeled"])
    assert h["calibrated"]["ece"] != pytest.approx(everything["calibrated"]["ece"], abs=1e-6)
    sentence = s["heldout_sentence"]
    c, raw = h["calibrated"], h["raw"]
    assert "n=150" in sentence
    assert (f"ECE {raw['ece']:.3f} [{raw['ece_ci'][0]:.3f}, {raw['ece_ci'][1]:.3f}] raw → {c['ece']:.3f} "
            f"[{c['ece_ci'][0]:.3f}, {c['ece_ci'][1]:.3f}] calibrated") in sentence
    assert f"accuracy {c['accuracy']:.3f} [{c['accuracy_ci'][0]:.3f}, {c['accuracy_ci'][1]:.3f}] calibrated" in sentence
    assert f"{c['nll']:.3f} [{c['nll_ci'][0]:.3f}, {c['nll_ci'][1]:.3f}] calibrated" in sentence


def test_fit_rows_never_enter(warehouse):
    """Relabel every fit row wrongly: not one headline figure moves."""
    before = summary(load_summary_data(warehouse["spec"]))["heldout"]
    with writer(warehouse["path"]) as con:
        con.execute("update labels set label = case label when ? then ? else ? end where row_id in "
                    "(select row_id from calibrator_fit_rows where version = ?)",
                    [LABELS[0], LABELS[1], LABELS[0], warehouse["champion"]])
    after = summary(load_summary_data(warehouse["spec"]))["heldout"]
    assert after == before


def test_markdown_html_and_status_show_the_same_held_out_figures(warehouse, tmp_path):
    spec = warehouse["spec"]
    sentence = summary(load_summary_data(spec))["heldout_sentence"]
    assert f"- calibration, {sentence}\n" in report_markdown(spec)
    page = write_report(spec, tmp_path / "out").read_text(encoding="utf-8")
    assert f"Calibration, {html.escape(sentence)}." in page
    status = task_status(spec)
    assert f"calibration, {sentence}" in status.splitlines()
    # the old fit-row figure (every labeled row) is nowhere
    everything = expected(warehouse, warehouse["rows"]["is_labeled"])
    for text in (report_markdown(spec), status):
        assert f"{everything['calibrated']['ece']:.3f}] calibrated" not in text
        assert f"n={int(warehouse['rows']['is_labeled'].sum())}:" not in text


def test_one_night_of_fit_rows_only_says_so(warehouse):
    s = summary(load_summary_data(warehouse["spec"], warehouse["nights"][0]))
    h = s["heldout"]
    assert h["raw"] is None and h["calibrated"] is None and h["n"] == 0
    assert s["heldout_sentence"] == f"champion {warehouse['champion']}: {NO_HELDOUT}"
    assert "ECE" not in s["heldout_sentence"] and "accuracy" not in s["heldout_sentence"]


def promoted_event(filled, n_holdout=180):
    """A recalibration's `promoted` event for the champion, with its decision's held-out figures."""
    challenger = {"n": n_holdout, "accuracy": 0.81, "ece": 0.052, "ece_ci_low": 0.031, "ece_ci_high": 0.094,
                  "nll": 0.433}
    baseline = {"n": n_holdout, "accuracy": 0.80, "ece": 0.118, "ece_ci_low": 0.083, "ece_ci_high": 0.171,
                "nll": 0.547}
    metrics = {"n_holdout": n_holdout, "evaluation": "time split", "baseline": "raw", "challenger": challenger,
               "baseline_metrics": baseline, "refit_on_all_labels": {"n": 320},
               "comparison": {"level": 0.95, "nll_gain": {"estimate": 0.114, "low": 0.05, "high": 0.17}}}
    with writer(filled["path"]) as con:
        con.execute("insert into calibrator_events (task_version, version, event, actor, reason, metrics, event_at) "
                    "values (?, ?, 'promoted', 'run-recal-2', 'better', ?, ?)",
                    [filled["task_version"], filled["champion"], json.dumps(metrics),
                     datetime(2025, 3, 4, tzinfo=timezone.utc)])
    return challenger, baseline


def test_champion_refit_on_every_label_has_no_held_out_figures(warehouse, tmp_path):
    """Right after a promotion refitted on all labels: no figure from fit rows; the decision's own held-out
    figures are quoted as what they are."""
    spec, r = warehouse["spec"], warehouse["rows"]
    record_fit_rows(warehouse["path"], warehouse["champion"], r["row_id"][warehouse["heldout"]])
    s = summary(load_summary_data(spec))
    assert s["heldout"]["raw"] is None and s["heldout"]["calibrated"] is None
    assert s["heldout_sentence"] == f"champion {warehouse['champion']}: {NO_HELDOUT}"
    for text in (report_markdown(spec), task_status(spec),
                 write_report(spec, tmp_path / "out").read_text(encoding="utf-8").split("<h2>")[0]):
        assert NO_HELDOUT in text
        assert "ECE 0." not in text and "accuracy 0." not in text and "NLL 0." not in text

    challenger, baseline = promoted_event(warehouse)
    sentence = summary(load_summary_data(spec))["heldout_sentence"]
    assert sentence.startswith(f"champion {warehouse['champion']}: {NO_HELDOUT}. At promotion, on 180 held-out rows "
                               "(time split)")
    low, high = ref_wilson(0.81, 180)
    assert ("ECE 0.052 [0.031, 0.094] vs 0.118 [0.083, 0.171] for raw; "
            f"accuracy 0.810 [{low:.3f}, {high:.3f}]; NLL 0.433 vs 0.547 "
            "(gain +0.1140, one-sided 95% bounds [+0.0500, +0.1700])") in sentence
    assert sentence in task_status(spec)


def test_before_any_champion_raw_figures_on_every_label(warehouse):
    """No calibrator was fitted on any label: the raw figures of every current label are held out."""
    with writer(warehouse["path"]) as con:
        con.execute("delete from calibrator_fit_rows")
        con.execute("update calibrators set status = 'retired'")
    s = summary(load_summary_data(warehouse["spec"]))
    labeled = warehouse["rows"]["is_labeled"]
    assert s["heldout"]["champion"] is None and s["heldout"]["calibrated"] is None
    assert_figures(s["heldout"]["raw"], expected(warehouse, labeled, calibrated=False)["raw"])
    assert s["heldout_sentence"].startswith(f"raw scores, no calibrator yet (none was fitted on these labels), "
                                            f"n={int(labeled.sum())}: ECE ")


def test_no_labels_at_all():
    h = {"champion": None, "n": 0, "raw": None, "calibrated": None, "at_promotion": None}
    assert heldout_sentence(h) == "no labeled rows yet: no calibration figure to show"
