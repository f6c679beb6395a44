"""Calibrators: fit / predict / JSON round trip, held-out improvement, weights, validation."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from calscore.calibration_store import METHODS, calibrator_from_dict, make_calibrator, metrics
from calscore.calibration_store.evaluation import cross_fit
from calscore.calibration_store.folds import fold_indices
from synthetic_scores import synthetic_scores

# combined reads two signals side by side: tests/test_combined_calibrator.py
ONE_SIGNAL = [m for m in METHODS if m != "combined"]
FIXED = [m for m in ONE_SIGNAL if m != "auto"]  # auto is tested on its own (it cross-validates)


def labels_for(k: int) -> list[str]:
    return ["positive", "negative"] if k == 2 else [f"label{i}" for i in range(k)]


@pytest.fixture(scope="module", params=[2, 4], ids=["K2", "K4"])
def miscalibrated(request):
    """Over-confident scores leaning towards the first label: 2,000 rows to fit, 2,000 to score."""
    return request.param, synthetic_scores(4000, request.param, scale=2.5, lean=1.0, seed=1)


@pytest.fixture(scope="module", params=[2, 4], ids=["K2", "K4"])
def calibrated(request):
    return request.param, synthetic_scores(4000, request.param, scale=1.0, lean=0.0, seed=2)


FIT, TEST = slice(0, 2000), slice(2000, None)


@pytest.mark.parametrize("method", FIXED)
def test_probabilities_are_a_distribution_and_round_trip_bit_for_bit(method, miscalibrated):
    k, s = miscalibrated
    cal = make_calibrator(method, labels=labels_for(k))
    assert cal.fit(s.logprobs[FIT], s.y[FIT]) is cal
    probs = cal.predict_proba(s.logprobs[TEST])
    assert probs.shape == (2000, k)
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)

    text = json.dumps(cal.to_dict(), allow_nan=False)  # JSON-safe, no NaN or numpy objects
    loaded = calibrator_from_dict(json.loads(text))
    assert type(loaded) is type(cal)
    assert np.array_equal(loaded.predict_proba(s.logprobs[TEST]), probs)
    assert loaded.to_dict() == cal.to_dict()


@pytest.mark.parametrize("method", FIXED)
def test_improves_heldout_nll_on_miscalibrated_scores(method, miscalibrated):
    k, s = miscalibrated
    cal = make_calibrator(method, labels=labels_for(k)).fit(s.logprobs[FIT], s.y[FIT])
    y = s.y[TEST]
    raw = metrics.nll(metrics.raw_probs(s.logprobs[TEST]), y)
    calibrated_nll = metrics.nll(cal.predict_proba(s.logprobs[TEST]), y)
    oracle = metrics.nll(s.true_probs[TEST], y)  # the known true calibration curve
    assert raw - oracle > 0.15, "the fixture must be clearly miscalibrated"
    assert calibrated_nll < raw - 0.1
    assert calibrated_nll - oracle < 0.03
    assert metrics.ece(cal.predict_proba(s.logprobs[TEST]), y) < metrics.ece(metrics.raw_probs(s.logprobs[TEST]), y)


@pytest.mark.parametrize("method", FIXED)
def test_does_not_spoil_calibrated_scores_beyond_noise(method, calibrated):
    k, s = calibrated
    cal = make_calibrator(method, labels=labels_for(k)).fit(s.logprobs[FIT], s.y[FIT])
    y = s.y[TEST]
    raw = metrics.nll(metrics.raw_probs(s.logprobs[TEST]), y)
    # Non-parametric maps pay more estimation noise for their flexibility (measured over
    # seeds with 2,000 fit rows: isotonic up to +0.02 NLL at K=4, the others below +0.01).
    tolerance = 0.03 if method == "isotonic" else 0.015
    assert metrics.nll(cal.predict_proba(s.logprobs[TEST]), y) <= raw + tolerance
    assert metrics.brier(cal.predict_proba(s.logprobs[TEST]), y) <= metrics.brier(metrics.raw_probs(s.logprobs[TEST]), y) + 0.005


def test_temperature_scaling_keeps_the_raw_prediction(miscalibrated):
    k, s = miscalibrated
    cal = make_calibrator("temperature", labels=labels_for(k)).fit(s.logprobs[FIT], s.y[FIT])
    assert cal.temperature_ > 1.5  # over-confident scores are softened
    assert np.array_equal(cal.predict(s.logprobs), np.argmax(s.logprobs, axis=1))


@pytest.mark.parametrize("method", ["platt", "vector", "beta"])
def test_bias_terms_correct_a_lean_and_may_change_the_label(method):
    s = synthetic_scores(4000, 2, scale=1.0, lean=2.0, seed=3)
    cal = make_calibrator(method, labels=labels_for(2)).fit(s.logprobs[FIT], s.y[FIT])
    raw_acc = metrics.accuracy(metrics.raw_probs(s.logprobs[TEST]), s.y[TEST])
    cal_acc = metrics.accuracy(cal.predict_proba(s.logprobs[TEST]), s.y[TEST])
    assert cal_acc > raw_acc + 0.03
    assert (cal.predict(s.logprobs[TEST]) != np.argmax(s.logprobs[TEST], axis=1)).any()


def test_platt_is_logistic_regression_on_the_log_odds():
    s = synthetic_scores(1500, 2, seed=4)
    cal = make_calibrator("platt", labels=labels_for(2), smoothing=False).fit(s.logprobs, s.y)
    z = (s.logprobs[:, 1] - s.logprobs[:, 0])[:, None]  # log p(l1) - log p(l0)
    ref = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(z, s.y)
    model = cal.models_[0]
    assert model["slope"] == pytest.approx(ref.coef_[0, 0], rel=1e-4)
    assert model["intercept"] == pytest.approx(ref.intercept_[0], rel=1e-4, abs=1e-5)
    # Platt's targets (the default) shrink the map slightly towards less confidence
    smoothed = make_calibrator("platt", labels=labels_for(2)).fit(s.logprobs, s.y).models_[0]
    assert 0 < smoothed["slope"] < model["slope"]


def test_isotonic_is_monotone_in_the_log_odds_and_clipped():
    s = synthetic_scores(2000, 2, seed=5)
    cal = make_calibrator("isotonic", labels=labels_for(2), eps=0.01).fit(s.logprobs, s.y)
    z = np.linspace(-40, 40, 801)
    grid = np.column_stack([np.log(0.5) - np.logaddexp(0, z), np.log(0.5) - np.logaddexp(0, -z)])  # log-odds = z
    p1 = cal.predict_proba(grid)[:, 1]
    assert np.all(np.diff(p1) >= -1e-12)
    assert p1.min() >= 0.01 - 1e-12 and p1.max() <= 0.99 + 1e-12
    assert p1[-1] > 0.9 and p1[0] < 0.1


def test_auto_falls_back_to_temperature_with_few_labels():
    s = synthetic_scores(60, 2, seed=6)
    cal = make_calibrator("auto", labels=labels_for(2)).fit(s.logprobs, s.y)
    d = cal.to_dict()
    assert d["params"]["chosen"] == "temperature"
    assert "min_selection_labels" in d["params"]["reason"]
    assert d["params"]["calibrator"]["method"] == "temperature"


def test_auto_chooses_by_cross_validated_nll_and_serialises_its_choice():
    s = synthetic_scores(800, 2, scale=1.0, lean=2.0, seed=7)  # a lean that temperature scaling cannot fix
    cal = make_calibrator("auto", labels=labels_for(2), methods=["temperature", "platt", "isotonic"], folds=3)
    cal.fit(s.logprobs, s.y)
    d = json.loads(json.dumps(cal.to_dict(), allow_nan=False))
    cv = d["params"]["cv_nll"]
    assert set(cv) == {"temperature", "platt", "isotonic"}
    assert d["params"]["chosen"] == min(cv, key=cv.get)
    assert d["params"]["chosen"] != "temperature"
    assert d["params"]["calibrator"]["method"] == d["params"]["chosen"]
    assert np.array_equal(calibrator_from_dict(d).predict_proba(s.logprobs), cal.predict_proba(s.logprobs))


def test_every_method_handles_four_labels_with_auto_too():
    s = synthetic_scores(400, 4, seed=8)
    cal = make_calibrator("auto", labels=labels_for(4), folds=3).fit(s.logprobs, s.y)
    assert cal.predict_proba(s.logprobs).shape == (400, 4)
    assert cal.chosen_method_ in FIXED
    assert len(cal.cv_nll_) + len(cal.skipped_) == len(FIXED)


# --- weights ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", [m for m in FIXED if m != "temperature"])
def test_weights_move_the_fit_towards_the_upweighted_label(method):
    k = 2
    s = synthetic_scores(1200, k, scale=1.5, lean=0.0, seed=9)
    w = np.where(s.y == 1, 4.0, 1.0)
    plain = make_calibrator(method, labels=labels_for(k)).fit(s.logprobs, s.y)
    weighted = make_calibrator(method, labels=labels_for(k)).fit(s.logprobs, s.y, sample_weight=w)
    p_plain = plain.predict_proba(s.logprobs)[:, 1]
    p_weighted = weighted.predict_proba(s.logprobs)[:, 1]
    assert p_weighted.mean() > p_plain.mean() + 0.05
    # calibration in the large for the population the weights describe
    assert np.average(p_weighted, weights=w) == pytest.approx(np.average(s.y == 1, weights=w), abs=0.02)
    assert np.average(p_plain, weights=w) < np.average(s.y == 1, weights=w) - 0.05


def test_weights_on_the_model_s_mistakes_raise_the_temperature():
    s = synthetic_scores(1200, 3, scale=1.5, lean=0.0, seed=9)
    wrong = np.argmax(s.logprobs, axis=1) != s.y
    plain = make_calibrator("temperature", labels=labels_for(3)).fit(s.logprobs, s.y)
    on_mistakes = make_calibrator("temperature", labels=labels_for(3)).fit(s.logprobs, s.y, np.where(wrong, 3.0, 1.0))
    on_successes = make_calibrator("temperature", labels=labels_for(3)).fit(s.logprobs, s.y, np.where(wrong, 1.0, 3.0))
    assert on_successes.temperature_ < plain.temperature_ < on_mistakes.temperature_


@pytest.mark.parametrize(
    ("method", "params"), [("temperature", {}), ("isotonic", {}), ("platt", {"smoothing": False})]
)
def test_integer_weights_equal_repeated_rows(method, params):
    s = synthetic_scores(300, 2, seed=10)
    w = np.random.default_rng(0).integers(1, 4, size=300)
    weighted = make_calibrator(method, labels=labels_for(2), **params).fit(s.logprobs, s.y, sample_weight=w)
    rep = np.repeat(np.arange(300), w)
    repeated = make_calibrator(method, labels=labels_for(2), **params).fit(s.logprobs[rep], s.y[rep])
    np.testing.assert_allclose(weighted.predict_proba(s.logprobs), repeated.predict_proba(s.logprobs), atol=1e-5)


# --- honest evaluation ----------------------------------------------------------------------


def test_cross_fit_predicts_each_row_with_a_calibrator_not_fitted_on_it():
    s = synthetic_scores(300, 2, seed=11)
    held_out = cross_fit("isotonic", labels_for(2), s.logprobs, s.y, folds=5, seed=3)
    folds = fold_indices(s.y, 5, 3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(300))
    test = folds[2]
    train = np.setdiff1d(np.arange(300), test)
    again = make_calibrator("isotonic", labels=labels_for(2)).fit(s.logprobs[train], s.y[train])
    assert np.array_equal(held_out[test], again.predict_proba(s.logprobs[test]))
    # in-sample isotonic looks better than it is; cross-fitting does not flatter it
    in_sample = make_calibrator("isotonic", labels=labels_for(2)).fit(s.logprobs, s.y).predict_proba(s.logprobs)
    assert metrics.nll(in_sample, s.y) < metrics.nll(held_out, s.y)


# --- validation -----------------------------------------------------------------------------


@pytest.fixture
def small():
    return synthetic_scores(50, 2, seed=12)


@pytest.mark.parametrize("method", ONE_SIGNAL)
def test_one_class_only_is_an_error(method, small):
    with pytest.raises(ValueError, match="same label"):
        make_calibrator(method, labels=labels_for(2)).fit(small.logprobs, np.zeros(50, dtype=int))


@pytest.mark.parametrize("method", ONE_SIGNAL)
def test_too_few_labels_is_an_error(method, small):
    with pytest.raises(ValueError, match="at least"):
        make_calibrator(method, labels=labels_for(2)).fit(small.logprobs[:5], np.array([0, 1, 0, 1, 0]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logprobs_are_an_error(bad, small):
    x = small.logprobs.copy()
    x[7, 1] = bad
    cal = make_calibrator("platt", labels=labels_for(2))
    with pytest.raises(ValueError, match="row 7"):
        cal.fit(x, small.y)
    cal.fit(small.logprobs, small.y)
    with pytest.raises(ValueError, match="finite"):
        cal.predict_proba(x)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x, y: (x[:, :1], y), r"shape \(n, 2\)"),
        (lambda x, y: (x[0], y), r"shape \(n, 2\)"),
        (lambda x, y: (x, y[:-1]), "1-D array of 50"),
        (lambda x, y: (x, np.where(y == 1, 2, y)), "outside 0..1"),
        (lambda x, y: (x, y - 1), "outside 0..1"),
        (lambda x, y: (x, y.astype(float)), "integer label indices"),
        (lambda x, y: (np.exp(x), y), "probabilities or logits"),
        (lambda x, y: (np.log(np.full_like(x, 0.9)), y), "sum to"),
    ],
)
def test_malformed_input_is_a_clear_error(mutate, message, small):
    x, y = mutate(small.logprobs, small.y)
    with pytest.raises(ValueError, match=message):
        make_calibrator("temperature", labels=labels_for(2)).fit(x, y)


def test_bad_weights_are_an_error(small):
    cal = make_calibrator("platt", labels=labels_for(2))
    with pytest.raises(ValueError, match=">= 0"):
        cal.fit(small.logprobs, small.y, sample_weight=-np.ones(50))
    with pytest.raises(ValueError, match="50 values"):
        cal.fit(small.logprobs, small.y, sample_weight=np.ones(49))
    with pytest.raises(ValueError, match="finite"):
        cal.fit(small.logprobs, small.y, sample_weight=np.full(50, np.nan))


def test_bad_methods_labels_and_parameters_are_errors():
    with pytest.raises(ValueError, match="unknown calibration method"):
        make_calibrator("sigmoid", labels=labels_for(2))
    with pytest.raises(ValueError, match="at least two labels"):
        make_calibrator("platt", labels=["only"])
    with pytest.raises(ValueError, match="distinct"):
        make_calibrator("platt", labels=["a", "a"])
    with pytest.raises(ValueError, match="unknown parameter"):
        make_calibrator("platt", labels=labels_for(2), n_bins=3)
    with pytest.raises(ValueError, match=r"C must be in \(0"):
        make_calibrator("vector", labels=labels_for(2), C=0.0)
    with pytest.raises(ValueError, match="eps must be"):
        make_calibrator("isotonic", labels=labels_for(2), eps=0.5)
    with pytest.raises(ValueError, match="methods"):
        make_calibrator("auto", labels=labels_for(2), methods=["platt", "magic"])


def test_predicting_before_fit_is_an_error(small):
    with pytest.raises(NotFittedError):
        make_calibrator("beta", labels=labels_for(2)).predict_proba(small.logprobs)


@pytest.mark.parametrize("method", FIXED)
def test_malformed_dicts_are_refused(method, small):
    d = make_calibrator(method, labels=labels_for(2)).fit(small.logprobs, small.y).to_dict()
    with pytest.raises(ValueError):
        calibrator_from_dict({**d, "labels": ["positive"]})
    with pytest.raises(ValueError):
        calibrator_from_dict({**d, "params": {**d["params"], "surprise": 1}})
    with pytest.raises(ValueError):
        calibrator_from_dict({**d, "method": "pickle"})
    broken = json.loads(json.dumps(d))
    key = next(k for k, v in broken["params"].items() if k not in ("n_fit_rows",) and not isinstance(v, bool))
    del broken["params"][key]
    with pytest.raises(ValueError):
        calibrator_from_dict(broken)
