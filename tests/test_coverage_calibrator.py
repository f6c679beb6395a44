"""Coverage as a calibrator input (`platt_coverage`): Platt scaling whose slope depends on the off-label
mass, checked against scikit-learn's logistic regression and on rows whose off-format answers are more
accurate than their label shares say (the AG News case of issue 11)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from calscore.calibration_store import calibrator_from_dict, make_calibrator
from calscore.calibration_store.coverage_platt import off_label_mass

LABELS = ["positive", "negative"]


def rows(n: int, seed: int, off_format_sharpness: float, lean: float = 0.3):
    """Binary rows: a third off-format (coverage 0.05-0.4), the rest on format (coverage 0.9-1).

    The true log-odds of label 1 are z_true ~ N(lean, 2); on-format rows report them as they are,
    off-format rows report z_true / off_format_sharpness (under-confident shares when > 1)."""
    rng = np.random.default_rng(seed)
    off = rng.random(n) < 1 / 3
    coverage = np.where(off, rng.uniform(0.05, 0.4, n), rng.uniform(0.9, 1.0, n))
    z_true = rng.normal(lean, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z_true))).astype(int)
    z = np.where(off, z_true / off_format_sharpness, z_true)
    p1 = 1 / (1 + np.exp(-z))
    logprobs = np.log(np.column_stack([(1 - p1) * coverage, p1 * coverage]))
    return logprobs, y, off


def test_the_fit_is_logistic_regression_on_the_log_odds_and_their_product_with_the_off_label_mass():
    logprobs, y, _ = rows(2000, seed=1, off_format_sharpness=3.0)
    cal = make_calibrator("platt_coverage", LABELS, smoothing=False).fit(logprobs, y)
    z = logprobs[:, 1] - logprobs[:, 0]
    m = 1 - np.exp(logprobs).sum(axis=1)
    ref = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(np.column_stack([z, z * m]), y)
    model = cal.models_[0]
    assert model["slope"] == pytest.approx(ref.coef_[0, 0], rel=1e-4)
    assert model["off_label_slope"] == pytest.approx(ref.coef_[0, 1], rel=1e-4)
    assert model["intercept"] == pytest.approx(ref.intercept_[0], rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(cal.predict_proba(logprobs)[:, 1], ref.predict_proba(np.column_stack([z, z * m]))[:, 1],
                               rtol=1e-4)
    np.testing.assert_allclose(off_label_mass(logprobs), m, atol=1e-12)


def test_off_format_rows_that_are_more_accurate_than_their_shares_get_their_confidence_back():
    logprobs, y, off = rows(6000, seed=2, off_format_sharpness=3.0)
    fit, test = slice(0, 3000), slice(3000, None)
    platt = make_calibrator("platt", LABELS).fit(logprobs[fit], y[fit])
    coverage = make_calibrator("platt_coverage", LABELS).fit(logprobs[fit], y[fit])
    nll_platt = log_loss(y[test], platt.predict_proba(logprobs[test]), labels=[0, 1])
    nll_coverage = log_loss(y[test], coverage.predict_proba(logprobs[test]), labels=[0, 1])
    assert nll_coverage < nll_platt - 0.02  # held out: the off-format rows' evidence is used
    # off-format rows: their calibrated confidence now matches their accuracy (Platt leaves them too unsure)
    off_test = off[test]
    conf = coverage.predict_proba(logprobs[test]).max(axis=1)[off_test]
    correct = (coverage.predict(logprobs[test]) == y[test])[off_test]
    assert abs(conf.mean() - correct.mean()) < 0.03
    assert platt.predict_proba(logprobs[test]).max(axis=1)[off_test].mean() < correct.mean() - 0.05
    assert coverage.models_[0]["off_label_slope"] > 1.0  # sharper where the label mass is small
    # JSON round trip, bit for bit
    again = calibrator_from_dict(coverage.to_dict())
    np.testing.assert_array_equal(again.predict_proba(logprobs[test]), coverage.predict_proba(logprobs[test]))


def test_uninformative_coverage_changes_little():
    logprobs, y, _ = rows(6000, seed=3, off_format_sharpness=1.0)
    fit, test = slice(0, 3000), slice(3000, None)
    platt = make_calibrator("platt", LABELS).fit(logprobs[fit], y[fit])
    coverage = make_calibrator("platt_coverage", LABELS).fit(logprobs[fit], y[fit])
    assert abs(coverage.models_[0]["off_label_slope"]) < 0.25
    nll_platt = log_loss(y[test], platt.predict_proba(logprobs[test]), labels=[0, 1])
    nll_coverage = log_loss(y[test], coverage.predict_proba(logprobs[test]), labels=[0, 1])
    assert abs(nll_coverage - nll_platt) < 0.005


def test_auto_chooses_it_where_it_wins_on_held_out_folds():
    logprobs, y, _ = rows(3000, seed=4, off_format_sharpness=3.0)
    assert make_calibrator("auto", LABELS).fit(logprobs, y).chosen_method_ == "platt_coverage"


def test_a_flat_optimum_is_not_reported_as_a_failed_fit():
    """L-BFGS-B stops with 'ABNORMAL' where the summed loss changes only in its last digits (seen on these folds);
    the mean loss's gradient is ~1e-9 there, so the fit has converged and no ConvergenceWarning is raised."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from calscore.calibration_store.evaluation import cross_fit

    logprobs, y, _ = rows(3000, seed=4, off_format_sharpness=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        probs = cross_fit("platt", LABELS, logprobs, y, None, 5, 0)
    assert np.allclose(probs.sum(axis=1), 1.0)
