"""Smooth ECE against the authors' relplot, debiased ECE by hand and by its defining property, their intervals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import relplot

from calscore.calibration_store import metrics


def top_label_case(n: int, k: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(probs, y) whose top-label confidence c is right with probability c - shift (shift > 0: overconfident)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.7), n)
    conf = probs.max(axis=1)
    right = rng.random(n) < np.clip(conf - shift, 0, 1)
    wrong = (probs.argmax(axis=1) + rng.integers(1, k, n)) % k
    return probs, np.where(right, probs.argmax(axis=1), wrong)


def binary_case(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-label probs whose top label is label 0 with the given confidence (> 1/2), y = 0 where correct."""
    return np.column_stack([confidence, 1 - confidence]), np.where(np.asarray(correct) == 1, 0, 1)


# --- smooth ECE: the same figure as relplot.smECE -------------------------------------------------


@pytest.mark.parametrize(
    ("n", "k", "shift", "seed"),
    [
        (500, 2, 0.0, 0),  # well calibrated
        (500, 4, 0.0, 1),
        (500, 2, 0.2, 2),  # overconfident
        (2000, 3, 0.1, 3),
        (300, 2, -0.15, 4),  # underconfident
        (40, 2, 0.1, 5),  # few rows
        (12, 3, 0.0, 6),
        (60000, 2, 0.0, 7),  # well calibrated and large: sigma < 0.01, a finer grid
    ],
)
def test_smooth_ece_matches_relplot(n, k, shift, seed):
    probs, y = top_label_case(n, k, shift, seed)
    f, correct = relplot.multiclass_logits_to_confidences(probs, y, probs=True)
    expected, width = relplot.smECE(f, correct, return_width=True)
    assert metrics.smooth_ece(probs, y) == pytest.approx(expected, abs=1e-12)
    report = metrics.reliability_report(probs, y, n_boot=10)
    assert report["smece"] == pytest.approx(expected, abs=1e-12)
    assert report["smece_sigma"] == width


def test_smooth_ece_matches_relplot_at_the_edges_of_0_1():
    confidence = np.array([0.5, 0.5, 1.0, 1.0, 1.0, 0.75, 0.999])
    correct = np.array([1, 0, 1, 1, 0, 1, 1])
    assert metrics.smooth_ece(*binary_case(confidence, correct)) == pytest.approx(
        relplot.smECE(confidence, correct.astype(float)), abs=1e-12
    )
    same = np.full(30, 0.7)  # one confidence, all right: the error is the 0.3 gap
    expected = relplot.smECE(same, np.ones(30))
    assert metrics.smooth_ece(*binary_case(same, np.ones(30))) == pytest.approx(expected, abs=1e-12)


def test_weighted_smooth_ece_equals_smooth_ece_of_repeated_rows():
    probs, y = top_label_case(300, 3, 0.1, seed=8)
    w = np.random.default_rng(8).integers(1, 5, 300)
    rep = np.repeat(np.arange(300), w)
    # equal up to relplot's density floor (1e-4 per grid point, against densities of order n)
    assert metrics.smooth_ece(probs, y, w) == pytest.approx(metrics.smooth_ece(probs[rep], y[rep]), rel=1e-6)
    assert metrics.smooth_ece(probs, y, 2.5 * w) == pytest.approx(metrics.smooth_ece(probs, y, w), rel=1e-12)
    assert metrics.smooth_ece(probs, y, np.full(300, 3.0)) == pytest.approx(metrics.smooth_ece(probs, y), rel=1e-12)


# --- debiased ECE (Kumar et al. 2019) -----------------------------------------------------------------


def test_debiased_ece_hand_computed():
    confidence = np.array([0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
    correct = np.array([1, 1, 1, 1, 0, 0, 1, 0])
    probs, y = binary_case(confidence, correct)
    # two equal-mass bins of 4 rows:
    #   (conf 0.675, acc 1.00): 0.325^2 - 1.00 * 0.00 / 3 = 0.105625
    #   (conf 0.875, acc 0.25): 0.625^2 - 0.25 * 0.75 / 3 = 0.328125
    squared = (0.105625 + 0.328125) / 2
    assert metrics.debiased_ece(probs, y, n_bins=2, squared=True) == pytest.approx(squared, rel=1e-12)
    assert metrics.debiased_ece(probs, y, n_bins=2) == pytest.approx(np.sqrt(squared), rel=1e-12)
    # a 1-row bin has no variance estimate and adds nothing; the rest is below its noise: clipped at 0
    assert metrics.debiased_ece(*binary_case(np.array([0.9, 0.6, 0.6, 0.6]), [1, 1, 0, 1]), n_bins=2) == 0.0
    # constant weights are no weights
    assert metrics.debiased_ece(probs, y, n_bins=2, weights=np.full(8, 4.0)) == pytest.approx(np.sqrt(squared))


def calibrated_case(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.5, 1.0, n)
    return binary_case(confidence, (rng.random(n) < confidence).astype(int))


def plug_in_squared(probs: np.ndarray, y: np.ndarray) -> float:
    """The l2 binned error squared without the correction, on the same equal-mass bins."""
    bins = metrics.reliability_bins(probs.max(axis=1), probs.argmax(axis=1) == y, strategy="quantile")
    return sum(b["count"] * (b["accuracy"] - b["confidence"]) ** 2 for b in bins) / probs.shape[0]


@pytest.mark.parametrize("n", [150, 600, 2400])
def test_debiased_ece_is_unbiased_where_binned_ece_is_not(n):
    seeds = range(60)
    cases = [calibrated_case(n, seed) for seed in seeds]
    squared = np.array([metrics.debiased_ece(p, y, squared=True) for p, y in cases])
    plug_in = np.mean([plug_in_squared(p, y) for p, y in cases])
    # perfectly calibrated: the squared estimate averages 0 ...
    assert abs(squared.mean()) < 3 * squared.std(ddof=1) / np.sqrt(len(squared)) + 1e-4
    # ... while the plug-in square carries the labels' noise, about var(label) * n_bins / n
    assert plug_in > 5 * abs(squared.mean()) and plug_in == pytest.approx(0.19 * 15 / n, rel=0.3)
    # and the binned (l1) ECE is far above 0, more so on fewer rows
    binned = np.mean([metrics.ece(p, y, strategy="quantile") for p, y in cases])
    assert binned > 2 * np.mean([metrics.debiased_ece(p, y) for p, y in cases])
    assert binned > 0.5 * np.sqrt(0.19 * 15 / n)


# --- intervals, report, speed -------------------------------------------------------------------------


def test_smece_interval_covers_the_estimate_and_narrows_with_n():
    probs, y = top_label_case(2000, 3, 0.1, seed=9)
    w = np.random.default_rng(9).uniform(0.5, 5.0, 2000)
    low, high = metrics.smece_bootstrap_ci(probs, y, w, seed=1)
    assert 0 <= low < metrics.smooth_ece(probs, y, w) < high
    assert (low, high) == metrics.smece_bootstrap_ci(probs, y, w, seed=1)
    small_low, small_high = metrics.smece_bootstrap_ci(probs[:200], y[:200], w[:200], seed=1)
    assert small_low < metrics.smooth_ece(probs[:200], y[:200], w[:200]) < small_high
    assert small_high - small_low > 2 * (high - low)  # ~ sqrt(10) narrower on 10x the rows
    with pytest.raises(ValueError, match="n_boot"):
        metrics.smece_bootstrap_ci(probs, y, n_boot=5)


def test_report_adds_the_new_figures_and_stays_json_safe():
    probs, y = top_label_case(400, 4, 0.1, seed=10)
    w = np.random.default_rng(10).uniform(0.5, 5.0, 400)
    report = metrics.reliability_report(probs, y, w, n_bins=10, n_boot=50, seed=3)
    json.dumps(report, allow_nan=False)
    assert report["smece"] == pytest.approx(metrics.smooth_ece(probs, y, w), rel=1e-12)
    interval = metrics.smece_bootstrap_ci(probs, y, w, n_boot=50, seed=3)
    assert (report["smece_ci_low"], report["smece_ci_high"]) == interval
    assert report["smece_ci_low"] <= report["smece"] <= report["smece_ci_high"]
    assert 0 < report["smece_sigma"] <= 1
    assert report["debiased_ece"] == metrics.debiased_ece(probs, y, n_bins=10, weights=w)
    # the binned figures are unchanged, for comparison with published tables
    assert report["ece"] == metrics.ece(probs, y, n_bins=10, weights=w)
    assert report["mce"] == metrics.mce(probs, y, n_bins=10, weights=w)
    assert (report["ece_ci_low"], report["ece_ci_high"]) == metrics.ece_bootstrap_ci(probs, y, w, 10, n_boot=50, seed=3)
