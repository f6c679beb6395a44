"""Binomial bounds and the threshold choice: Clopper-Pearson against scipy and by hand, Wilson by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta, binom, binomtest

from calscore.jobs.reports.intervals import (
    clopper_pearson_lower,
    effective_sample_size,
    weighted_proportion,
    wilson_interval,
)
from calscore.jobs.reports.thresholds import THRESHOLDS, choose_threshold, describe_choice, format_table, threshold_table


@pytest.mark.parametrize("k,n", [(1, 1), (5, 10), (9, 10), (47, 50), (180, 200), (999, 1000), (3, 400)])
def test_one_sided_lower_bound_matches_scipy(k, n):
    ours = clopper_pearson_lower(k, n)
    assert ours == pytest.approx(binomtest(k, n).proportion_ci(confidence_level=0.90, method="exact").low, abs=1e-12)
    assert ours == pytest.approx(beta.ppf(0.05, k, n - k + 1), abs=1e-12)


def test_lower_bound_by_hand():
    # all n right: P(X = n | p) = p^n = 0.05  =>  p = 0.05^(1/n)
    assert clopper_pearson_lower(20, 20) == pytest.approx(0.05 ** (1 / 20), abs=1e-12)  # 0.8609
    assert clopper_pearson_lower(20, 20) == pytest.approx(0.8609, abs=1e-4)
    # 9 of 10: the bound p solves P(X >= 9 | p) = 10 p^9 (1 - p) + p^10 = 0.05
    p = clopper_pearson_lower(9, 10)
    assert 10 * p**9 * (1 - p) + p**10 == pytest.approx(0.05, abs=1e-10)
    assert p == pytest.approx(0.6058, abs=1e-4)
    assert binom.sf(8, 10, p) == pytest.approx(0.05, abs=1e-10)
    assert clopper_pearson_lower(0, 10) == 0.0
    assert clopper_pearson_lower(0, 0) is None


def test_wilson_by_hand():
    p, n, z = 0.8, 50, 1.959963984540054
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert wilson_interval(p, n) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert wilson_interval(0.8, 50) == pytest.approx((0.6696, 0.8876), abs=1e-4)  # textbook value
    assert wilson_interval(None, 0) == (None, None)


def test_effective_sample_size():
    assert effective_sample_size(np.ones(40)) == pytest.approx(40)
    w = np.array([1.0] * 10 + [4.0] * 10)
    assert effective_sample_size(w) == pytest.approx(50**2 / (10 + 160))
    p, n_eff, k_eff = weighted_proportion([1, 1, 0, 1], [1, 3, 1, 1])
    assert p == pytest.approx(5 / 6) and n_eff == pytest.approx(36 / 12) and k_eff == pytest.approx(2.5)


def test_threshold_table_and_choice_on_a_small_case():
    conf = np.array([0.55, 0.65, 0.75, 0.85, 0.95, 0.97, 0.99, 0.91, 0.92, 0.60])
    automatable = np.array([True] * 9 + [False])  # the last is off-format: never counted
    audit = np.array([True, True, True, True, True, True, True, False, True, True])
    correct = np.array([False, True, False, True, True, True, True, False, True, True])
    table = threshold_table(conf, automatable, audit, correct)
    assert [r["threshold"] for r in table] == list(THRESHOLDS) and THRESHOLDS[0] == 0.5 and THRESHOLDS[-1] == 0.99
    at_90 = next(r for r in table if r["threshold"] == 0.90)
    # rows >= 0.90: 0.95, 0.97, 0.99, 0.91, 0.92 (5); audit-labeled among them: 4, all right
    assert at_90["rows"] == 5 and at_90["audit_labels"] == 4 and at_90["accuracy"] == 1.0
    assert at_90["share"] == pytest.approx(0.5)
    assert at_90["lower_bound"] == pytest.approx(0.05 ** (1 / 4))
    at_50 = table[0]
    assert at_50["rows"] == 9 and at_50["audit_labels"] == 8 and at_50["accuracy"] == pytest.approx(6 / 8)
    chosen = choose_threshold(table, 0.45)
    assert chosen is not None and chosen["lower_bound"] >= 0.45
    below = [r for r in table if r["threshold"] < chosen["threshold"]]
    assert all(r["lower_bound"] is None or r["lower_bound"] < 0.45 for r in below)
    assert choose_threshold(table, 0.99) is None
    assert "no threshold" in describe_choice(table, 0.99, 10)
    assert f"{chosen['threshold']:.2f}" in describe_choice(table, 0.45, 10)
    assert "<- chosen" in format_table(table, chosen=chosen)
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_threshold(table, 90)


def test_weighted_threshold_uses_effective_n():
    conf = np.full(6, 0.95)
    correct = np.array([True, True, True, True, True, False])
    w = np.array([1, 1, 1, 1, 4, 4], dtype=float)
    row = threshold_table(conf, np.ones(6, bool), np.ones(6, bool), correct, w)[0]
    p = 8 / 12
    n_eff = 144 / 36
    assert row["accuracy"] == pytest.approx(p) and row["n_eff"] == pytest.approx(n_eff)
    assert row["lower_bound"] == pytest.approx(beta.ppf(0.05, p * n_eff, n_eff - p * n_eff + 1))
