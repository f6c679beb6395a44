"""After a promotion refitted on every label, nothing goes blind: the report, `status`, `thresholds`, the label
budget and the health checks still use every label, each judged by a map that never saw it.

The report fixture's warehouse (two nights, 300 audit labels with inclusion probabilities, 20 review-queue
convenience labels, a Platt champion) is recalibrated for real (`run_recalibration`, no Prefect): the
certification slice (a stable 20% of the audit labels) stays out of every fit, the other labels become the
evidence base and the fit of the refreshed champion, which is re-applied to every row. Every figure is then
recomputed with numpy / sklearn from the stored out-of-fold predictions and the champion's own map.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss

from calscore.calibration_store.document import load_document
from calscore.calibration_store.evidence import certification_slice, stable_folds
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.store import champion
from calscore.jobs.calibrators.recalibrate import run_recalibration
from calscore.jobs.decisions import applied_floor, assign_buckets
from calscore.jobs.reports.health import health_checks
from calscore.jobs.reports.report_data import load_report_data, summary
from calscore.jobs.reports.status import task_status
from calscore.jobs.reports.thresholds import thresholds_text
from calscore.jobs.warehouse.connection import reader
from report_fixtures import LABELS, fill_report_warehouse


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    path = tmp_path_factory.mktemp("evidence") / "calscore.duckdb"
    filled = fill_report_warehouse(path)
    # every row re-decided by the new champion, however old the fixture's nights are
    calibration = filled["spec"].calibration.model_copy(update={"reapply_days": 100_000})
    spec = filled["spec"].model_copy(update={"calibration": calibration})
    first = run_recalibration(spec)
    second = run_recalibration(spec)
    return filled, spec, first, second


def split(filled, spec):
    """The rows of the current labels, which of them certify, and the evidence rows, as a recalibration splits."""
    r = filled["rows"]
    labeled = np.flatnonzero(r["is_labeled"])
    certify = certification_slice(spec.name, r["row_id"][labeled].tolist(), r["is_audit_label"][labeled], 0.2)
    return labeled, labeled[certify], labeled[~certify]


def test_the_certification_slice_never_enters_a_fit_and_the_rest_is_evidence(loop):
    filled, spec, first, _ = loop
    labeled, cert, evidence = split(filled, spec)
    assert first["promoted"] and first["refresh"], first["decision"]
    assert (first["n_labels"], first["n_certify"], first["n_evidence"]) == (320, cert.size, evidence.size)
    assert 40 <= cert.size <= 80  # about 20% of the 300 audit labels
    with reader(spec.warehouse.path) as con:
        fit = {r for (r,) in con.execute("select row_id from calibrator_fit_rows where version = ?",
                                         [first["version"]]).fetchall()}
        stored = con.execute("select row_id, fold from evidence where task_version = ? and recipe = 'platt'",
                             [spec.task_version]).fetchall()
    r = filled["rows"]
    assert fit == set(r["row_id"][evidence]) and not fit & set(r["row_id"][cert])
    assert dict(stored) == dict(zip(r["row_id"][evidence].tolist(),
                                    stable_folds(spec.name, r["row_id"][evidence].tolist(), 5).tolist()))


def test_a_second_recalibration_without_new_labels_reuses_the_evidence_and_changes_nothing(loop):
    _, _, first, second = loop
    assert first["recomputed"] == ["platt"] and second["recomputed"] == []
    assert not second["promoted"] and "no label changed since its fit" in second["decision"]
    assert second["champion"] == first["version"]


def judged_probs(filled, spec):
    """Every labeled row's judged probabilities: the out-of-fold Platt prediction on the champion's fit rows
    (recomputed here by hand), its own prediction on the certification slice."""
    r = filled["rows"]
    labeled, cert, evidence = split(filled, spec)
    with reader(spec.warehouse.path) as con:
        cal = load_document(champion(con, spec.task_version), spec.task_version)
    probs = cal.predict_proba(r["logprobs"])
    fold = stable_folds(spec.name, r["row_id"][evidence].tolist(), 5)
    for k in range(5):
        train, test = evidence[fold != k], evidence[fold == k]
        w = r["label_weight"][train]
        probs[test] = make_calibrator("platt", list(LABELS)).fit(r["logprobs"][train], r["y"][train], w) \
            .predict_proba(r["logprobs"][test])
    return probs, cert


def expected_headline(filled, spec):
    r = filled["rows"]
    probs, cert = judged_probs(filled, spec)
    audit = np.flatnonzero(r["is_audit_label"])
    return audit, probs[audit], r["y"][audit], r["label_weight"][audit], cert


def test_the_report_headline_uses_every_audit_label_judged_out_of_fold_or_held_out(loop):
    filled, spec, _, _ = loop
    audit, probs, y, w, cert = expected_headline(filled, spec)
    s = summary(load_report_data(spec))
    h = s["heldout"]
    assert h["n"] == audit.size == 300 and h["designs"] == {"audit": 300}
    assert h["calibrated"]["nll"] == pytest.approx(log_loss(y, probs, sample_weight=w, labels=[0, 1]), abs=1e-9)
    assert h["calibrated"]["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(axis=1), sample_weight=w))
    assert h["basis"] == (f"{300 - cert.size} out-of-fold (the champion's recipe, platt, fitted on the other folds), "
                          f"{cert.size} never seen by the calibrator")
    assert f"on 300 labels, none judged by a map that saw it" in s["heldout_sentence"]
    assert s["labeled"] == 320  # every label is judged; the 20 convenience ones only in row-level figures


def test_status_shows_the_same_figures(loop):
    filled, spec, _, _ = loop
    sentence = summary(load_report_data(spec))["heldout_sentence"]
    assert f"calibration, {sentence}" in task_status(spec).splitlines()


def test_thresholds_certify_on_the_certification_slice_only(loop):
    filled, spec, _, _ = loop
    _, cert, _ = split(filled, spec)
    text = thresholds_text(spec, 0.9)
    assert f"600 predictions, {cert.size} with certifying labels (audit or random sample, never fitted on), " \
           f"{300 - cert.size} with sample labels the calibrator was fitted on, 20 with convenience labels" in text
    assert "Certified on labels the deciding calibrator never saw: the certification slice" in text


def test_the_label_budget_and_the_health_checks_read_every_label(loop):
    filled, spec, _, _ = loop
    assert load_report_data(spec).scores.y.shape[0] == 300  # the headline's labels: every audit label
    # the auto bucket's check: every labeled row whose judged prediction lands in it, weighted
    r = filled["rows"]
    probs, _ = judged_probs(filled, spec)
    labeled = r["is_labeled"]
    with reader(spec.warehouse.path) as con:  # the floor the champion applies (decided from its labels)
        floor = applied_floor(spec.coverage_floor, champion(con, spec.task_version)["coverage_floor"])
    buckets, _ = assign_buckets(probs.max(axis=1), r["coverage"], spec.buckets, floor)
    auto = labeled & (buckets == "auto")
    w = r["label_weight"][auto]
    accuracy = accuracy_score(r["y"][auto], probs[auto].argmax(axis=1), sample_weight=w)
    check = {c.name: c for c in health_checks(spec, "run-score-2")}["bucket:auto"]
    assert check.status != "no_reference" and check.value == pytest.approx(accuracy)
    assert f"n_eff {w.sum() ** 2 / np.square(w).sum():.0f}" in check.detail
