"""Metrics against independent references (scikit-learn), hand-computed cases and published CIFAR figures."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from calscore.calibration_store import metrics

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAPERS = SHARED_DATA / "calibration_papers"


def random_probs(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, k))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    w = rng.uniform(0.5, 5.0, n)
    return p, y, w


# --- hand-computed ----------------------------------------------------------------------------


def test_hand_computed_bins_with_confidences_of_exactly_0_edges_and_1():
    confidence = [0.0, 0.2, 0.2, 0.5, 1.0, 1.0]
    correct = [0, 1, 0, 1, 1, 0]
    bins = metrics.reliability_bins(confidence, correct, n_bins=5)
    # (lower, upper]: 0.0 joins the first bin, 0.2 (an edge) stays in it, 1.0 is in the last
    assert [(b["lower"], b["upper"], b["count"]) for b in bins] == [(0.0, 0.2, 3), (0.4, 0.6, 1), (0.8, 1.0, 2)]
    # every b / n_bins is its bin's upper edge, exactly
    for n_bins in (10, 15, 20):
        edges = [b / n_bins for b in range(1, n_bins + 1)]
        got = metrics.reliability_bins(edges, [1] * n_bins, n_bins=n_bins)
        assert [b["upper"] for b in got] == edges and all(b["count"] == 1 for b in got)
    assert bins[0]["confidence"] == pytest.approx(0.4 / 3)
    assert bins[0]["accuracy"] == pytest.approx(1 / 3)
    ece, mce = metrics.calibration_errors(confidence, correct, n_bins=5)
    assert ece == pytest.approx(3 / 6 * 0.2 + 1 / 6 * 0.5 + 2 / 6 * 0.5)
    assert mce == pytest.approx(0.5)


def test_hand_computed_two_label_figures():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    assert metrics.accuracy(probs, y) == pytest.approx(0.5)
    assert metrics.brier(probs, y) == pytest.approx((0.01 + 0.04 + 0.36 + 1.0) / 4)  # binary (p1 - y)^2
    floor = -np.log(np.finfo(float).eps)  # p(y) = 0 is floored at machine epsilon
    assert metrics.nll(probs, y) == pytest.approx((-np.log(0.9) - np.log(0.8) - np.log(0.4) + floor) / 4)
    # correct rows have confidences 0.9 and 0.8; wrong rows 0.6 and 1.0 -> 2 of 4 pairs ordered right
    assert metrics.auroc(probs, y) == pytest.approx(0.5)
    assert metrics.nll(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


def test_raw_probs_are_each_label_s_share_of_the_label_mass():
    logprobs = np.log([[0.3, 0.1], [0.05, 0.45]])  # rows sum to 0.4 and 0.5
    np.testing.assert_allclose(metrics.raw_probs(logprobs), [[0.75, 0.25], [0.1, 0.9]])
    with pytest.raises(ValueError, match="log-probabilities"):
        metrics.raw_probs([[0.3, 0.1]])


def test_equal_mass_bins_hold_equal_counts():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 1000)
    correct = rng.random(1000) < confidence
    bins = metrics.reliability_bins(confidence, correct, n_bins=10, strategy="quantile")
    assert [b["count"] for b in bins] == [100] * 10


def test_auroc_is_none_when_every_row_is_right():
    probs = np.array([[0.9, 0.1], [0.3, 0.7]])
    assert metrics.auroc(probs, np.array([0, 1])) is None
    report = metrics.reliability_report(probs, np.array([0, 1]), n_boot=10)
    assert report["auroc"] is None
    json.dumps(report, allow_nan=False)


# --- independent references --------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [10, 15, 20])
def test_bins_match_sklearn_calibration_curve(strategy, n_bins):
    rng = np.random.default_rng(n_bins)
    y_prob = np.concatenate([rng.uniform(0, 1, 500), [0.0, 0.0, 1.0, 1.0, 0.5, 1 / n_bins]])
    y_true = (rng.random(y_prob.shape[0]) < y_prob).astype(int)
    prob_true, prob_pred = calibration_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    bins = metrics.reliability_bins(y_prob, y_true, n_bins=n_bins, strategy=strategy)
    np.testing.assert_allclose([b["accuracy"] for b in bins], prob_true, rtol=1e-12)
    np.testing.assert_allclose([b["confidence"] for b in bins], prob_pred, rtol=1e-12)
    assert sum(b["count"] for b in bins) == y_prob.shape[0]


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_scores_match_sklearn(k, weighted):
    p, y, w = random_probs(400, k, seed=k)
    w = w if weighted else None
    assert metrics.nll(p, y, w) == pytest.approx(log_loss(y, p, sample_weight=w, labels=list(range(k))), rel=1e-10)
    expected_brier = (
        brier_score_loss(y, p[:, 1], sample_weight=w)
        if k == 2
        else brier_score_loss(y, p, sample_weight=w, labels=list(range(k)), scale_by_half=True)
    )
    assert metrics.brier(p, y, w) == pytest.approx(expected_brier, rel=1e-10)
    pred = p.argmax(axis=1)
    assert metrics.accuracy(p, y, w) == pytest.approx(accuracy_score(y, pred, sample_weight=w))
    correct = (pred == y).astype(int)
    assert metrics.auroc(p, y, w) == pytest.approx(roc_auc_score(correct, p.max(axis=1), sample_weight=w), rel=1e-10)


def test_auroc_counts_ties_half_like_sklearn():
    confidence = np.array([0.6, 0.6, 0.6, 0.9, 0.7, 0.7])
    correct = np.array([1, 0, 1, 1, 0, 1])
    w = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 0.5])
    assert metrics.auroc_from_confidence(confidence, correct, w) == pytest.approx(
        roc_auc_score(correct, confidence, sample_weight=w)
    )


def test_weighted_ece_equals_ece_of_repeated_rows():
    p, y, _ = random_probs(300, 3, seed=1)
    w = np.random.default_rng(1).integers(1, 5, 300)
    rep = np.repeat(np.arange(300), w)
    assert metrics.ece(p, y, weights=w) == pytest.approx(metrics.ece(p[rep], y[rep]), rel=1e-12)
    assert metrics.mce(p, y, weights=w) == pytest.approx(metrics.mce(p[rep], y[rep]))
    assert metrics.nll(p, y, w) == pytest.approx(metrics.nll(p[rep], y[rep]))


def test_weights_change_the_estimate_towards_the_population():
    # reviewed rows are mostly low-confidence ones; their weights restore the population's accuracy
    p = np.array([[0.95, 0.05]] * 10 + [[0.55, 0.45]] * 10)
    y = np.array([0] * 10 + [0] * 5 + [1] * 5)
    w = np.array([9.0] * 10 + [1.0] * 10)
    assert metrics.accuracy(p, y) == pytest.approx(0.75)
    assert metrics.accuracy(p, y, w) == pytest.approx((90 + 5) / 100)


def test_bootstrap_interval_brackets_the_ece_and_is_reproducible():
    p, y, w = random_probs(2000, 2, seed=5)
    low, high = metrics.ece_bootstrap_ci(p, y, w, seed=1)
    assert 0 <= low < metrics.ece(p, y, weights=w) < high
    assert (low, high) == metrics.ece_bootstrap_ci(p, y, w, seed=1)
    wide = metrics.ece_bootstrap_ci(p[:200], y[:200], w[:200], seed=1)
    assert wide[1] - wide[0] > high - low


def test_report_is_json_safe_and_complete():
    p, y, w = random_probs(500, 4, seed=6)
    report = metrics.reliability_report(p, y, w, n_bins=10)
    json.dumps(report, allow_nan=False)
    assert {
        "n", "accuracy", "ece", "ece_equal_mass", "ece_ci_low", "ece_ci_high", "mce", "nll", "brier", "auroc", "bins"
    } <= set(report)
    assert report["n"] == 500 and report["n_bins"] == 10
    assert {"lower", "upper", "confidence", "accuracy", "count"} <= set(report["bins"][0])
    assert sum(b["count"] for b in report["bins"]) == 500
    assert report["ece"] == pytest.approx(metrics.ece(p, y, n_bins=10, weights=w))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.ece(np.array([[0.5, 0.6]]), np.array([0])), "sum to 1"),
        (lambda: metrics.ece(np.array([[0.5, 0.5]]), np.array([2])), "outside"),
        (lambda: metrics.ece(np.array([[0.5, 0.5]]), np.array([0]), n_bins=0), "n_bins"),
        (lambda: metrics.ece(np.array([[0.5, 0.5]]), np.array([0]), strategy="kmeans"), "strategy"),
        (lambda: metrics.nll(np.array([[np.nan, 1.0]]), np.array([0])), "finite"),
        (lambda: metrics.brier(np.array([[0.5, 0.5]]), np.array([0]), weights=[-1.0]), ">= 0"),
        (lambda: metrics.reliability_bins([1.5], [1]), r"\[0, 1\]"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- published figures -------------------------------------------------------------------------

CIFAR = ["resnet110_c10", "densenet40_c10", "resnet110_c100", "densenet40_c100"]


@pytest.mark.shared_data
@pytest.mark.parametrize("network", CIFAR)
def test_uncalibrated_ece_and_mce_reproduce_kull_et_al_2019(network):
    if not PAPERS.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (only beside the lead's checkout)")
    published = json.loads((PAPERS / "published_kull2019.json").read_text())["rows"][network]
    data = np.genfromtxt(PAPERS / f"probs_{network}_logits.csv", delimiter=",", skip_header=1)
    true_label, pred_label, confidence = data[:, 0], data[:, 1], data[:, 2]
    correct = true_label == pred_label
    assert 1 - correct.mean() == pytest.approx(published["error"] / 100)
    ece, mce = metrics.calibration_errors(confidence, correct, n_bins=15, strategy="uniform")
    assert ece == pytest.approx(published["uncal"]["ECE"], abs=1e-6)
    assert mce == pytest.approx(published["uncal"]["MCE"], abs=1e-6)
