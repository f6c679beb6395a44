"""Full matrix scaling (`matrix`): scikit-learn's logistic regression at the same penalty, JSON, weights, validation.

What every method must do (valid probabilities, bit-for-bit JSON round trip, a better held-out NLL
on miscalibrated scores, refusing malformed dicts) is checked for `matrix` too by the tests
parametrised over METHODS in tests/test_calibrators.py.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression

from calscore.calibration_store import calibrator_from_dict, make_calibrator, metrics
from calscore.calibration_store.base import log_shares
from synthetic_scores import synthetic_scores


def labels_for(k: int) -> list[str]:
    return [f"label{i}" for i in range(k)]


def exact_sklearn(C: float, **kwargs) -> LogisticRegression:
    return LogisticRegression(C=C, tol=1e-12, max_iter=100_000, **kwargs)


@pytest.mark.parametrize("k", [2, 4, 6])
def test_unpenalised_it_is_sklearn_s_unpenalised_multinomial_logistic_regression(k):
    s = synthetic_scores(1500, k, seed=4)
    cal = make_calibrator("matrix", labels_for(k), reg_lambda=0.0, reg_mu=0.0).fit(s.logprobs, s.y)
    z = log_shares(s.logprobs)
    ref = exact_sklearn(np.inf).fit(z, s.y)  # lbfgs, multinomial; C = inf: no penalty
    np.testing.assert_allclose(cal.predict_proba(s.logprobs), ref.predict_proba(z), atol=1e-5)


@pytest.mark.parametrize(("k", "reg_lambda"), [(2, 5.0), (4, 0.0), (6, 0.0)])
def test_the_intercept_penalty_is_sklearn_s_l2_penalty_on_a_constant_feature(k, reg_lambda):
    """Both fits penalise only the intercepts, by the same amount.

    scikit-learn minimises sum_i NLL_i + ||coef||^2 / (2 C) and never penalises its own intercept;
    matrix minimises n times (mean NLL + mu / K ||b||^2) with lambda = 0. So sklearn gets the intercept
    as a constant feature (fit_intercept=False) with C = K / (2 n mu), and the log-shares times 1000,
    which shrinks its penalty on W 10^6-fold, to where it moves no probability by 1e-6. With K = 2
    sklearn fits one logit difference d = b_1 - b_0, on which mu / 2 (b_0^2 + b_1^2) is at least
    mu d^2 / 4 (C = 2 / (n mu)), and lambda changes nothing (see the module docstring). Its Newton
    solver, because lbfgs stops about 1e-5 short in probability on features this unevenly scaled.
    """
    s = synthetic_scores(1500, k, seed=4)
    n, mu, scale = len(s.y), 0.02, 1000.0
    cal = make_calibrator("matrix", labels_for(k), reg_lambda=reg_lambda, reg_mu=mu).fit(s.logprobs, s.y)
    X = np.column_stack([scale * log_shares(s.logprobs), np.ones(n)])
    C = 2.0 / (n * mu) if k == 2 else k / (2.0 * n * mu)
    ref = exact_sklearn(C, fit_intercept=False, solver="newton-cholesky").fit(X, s.y)
    np.testing.assert_allclose(cal.predict_proba(s.logprobs), ref.predict_proba(X), atol=1e-5)
    unpenalised = make_calibrator("matrix", labels_for(k), reg_lambda=reg_lambda, reg_mu=0.0).fit(s.logprobs, s.y)
    assert np.abs(unpenalised.predict_proba(s.logprobs) - ref.predict_proba(X)).max() > 1e-3  # the penalty acts


def test_with_two_labels_only_the_intercept_penalty_changes_the_prediction():
    s = synthetic_scores(800, 2, seed=5)
    free, pulled = (make_calibrator("matrix", labels_for(2), reg_lambda=lam).fit(s.logprobs, s.y)
                    for lam in (0.0, 100.0))
    np.testing.assert_allclose(free.predict_proba(s.logprobs), pulled.predict_proba(s.logprobs), atol=1e-6)


def confused_scores(n: int, seed: int):
    """4 labels whose scores mix labels 0 and 1 (and 2 and 3): the model half-reads one as the other.

    The reported log-shares are log_softmax(A t) for true logits t, with A's rows summing to the same
    value, so W = A^-1 undoes the mixing exactly; per-label maps cannot.
    """
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, 2.0, size=(n, 4))
    true_probs = softmax(t, axis=1)
    y = np.array([rng.choice(4, p=p) for p in true_probs])
    mix = np.array([[1.0, 0.6, 0.0, 0.0], [0.6, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.6], [0.0, 0.0, 0.6, 1.0]])
    coverage = rng.uniform(0.3, 1.0, size=(n, 1))
    return log_softmax(t @ mix.T, axis=1) + np.log(coverage), y, true_probs


def test_probabilities_are_valid_and_it_undoes_a_confusion_vector_scaling_cannot():
    x, y, true_probs = confused_scores(3000, seed=6)
    fit, test = slice(0, 2000), slice(2000, None)
    cal = make_calibrator("matrix", labels_for(4)).fit(x[fit], y[fit])
    probs = cal.predict_proba(x[test])
    assert probs.shape == (1000, 4)
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.array_equal(cal.predict(x[test]), np.argmax(probs, axis=1))

    vector = make_calibrator("vector", labels_for(4)).fit(x[fit], y[fit]).predict_proba(x[test])
    oracle = metrics.nll(true_probs[test], y[test])
    assert metrics.nll(probs, y[test]) < metrics.nll(vector, y[test]) - 0.05
    assert metrics.nll(probs, y[test]) - oracle < 0.02
    assert cal.weights_[0, 1] < -0.2 and cal.weights_[1, 0] < -0.2  # label 1's share is subtracted from label 0's


def test_json_round_trip_gives_the_same_probabilities():
    s = synthetic_scores(600, 4, seed=7)
    cal = make_calibrator("matrix", labels_for(4), reg_lambda=0.05, reg_mu=0.2).fit(s.logprobs, s.y)
    d = json.loads(json.dumps(cal.to_dict(), allow_nan=False))
    assert d["method"] == "matrix" and d["params"]["reg_lambda"] == 0.05 and d["params"]["reg_mu"] == 0.2
    assert [len(logit["weights"]) for logit in d["params"]["logits"]] == [4, 4, 4, 4]
    loaded = calibrator_from_dict(d)
    assert np.array_equal(loaded.predict_proba(s.logprobs), cal.predict_proba(s.logprobs))
    assert loaded.to_dict() == cal.to_dict()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"reg_lambda": -0.1}, r"reg_lambda must be in \[0"),
        ({"reg_mu": -1}, r"reg_mu must be in \[0"),
        ({"reg_lambda": float("nan")}, "reg_lambda must be finite"),
        ({"reg_mu": float("inf")}, "reg_mu must be finite"),
        ({"reg_lambda": "0.1"}, "reg_lambda must be a number"),
        ({"reg_mu": True}, "reg_mu must be a number"),
        ({"C": 1.0}, "unknown parameter"),
    ],
)
def test_bad_parameters_are_errors(params, message):
    with pytest.raises(ValueError, match=message):
        make_calibrator("matrix", labels_for(3), **params)


def test_a_malformed_state_is_refused():
    s = synthetic_scores(200, 3, seed=8)
    d = make_calibrator("matrix", labels_for(3)).fit(s.logprobs, s.y).to_dict()
    logits = d["params"]["logits"]
    for bad in (logits[:2], [*logits[:2], {**logits[2], "weights": [1.0, 0.0]}],
                [*logits[:2], {**logits[2], "intercept": None}], {"weights": []}):
        with pytest.raises(ValueError, match="matrix"):
            calibrator_from_dict({**d, "params": {**d["params"], "logits": bad}})


def test_integer_weights_equal_repeated_rows():
    s = synthetic_scores(300, 4, seed=10)
    w = np.random.default_rng(0).integers(1, 4, size=300)
    weighted = make_calibrator("matrix", labels_for(4)).fit(s.logprobs, s.y, sample_weight=w)
    rep = np.repeat(np.arange(300), w)
    repeated = make_calibrator("matrix", labels_for(4)).fit(s.logprobs[rep], s.y[rep])
    np.testing.assert_allclose(weighted.predict_proba(s.logprobs), repeated.predict_proba(s.logprobs), atol=1e-6)


@pytest.mark.parametrize(("reg_lambda", "reg_mu"), [(0.0, 0.0), (None, None)])
def test_a_fit_that_converges_does_not_warn(reg_lambda, reg_mu):
    s = synthetic_scores(400, 6, seed=11)
    params = {} if reg_lambda is None else {"reg_lambda": reg_lambda, "reg_mu": reg_mu}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_calibrator("matrix", labels_for(6), **params).fit(s.logprobs, s.y)
