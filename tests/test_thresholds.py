"""Binomial bounds and the threshold choice: Clopper-Pearson against scipy and by hand, Wilson by hand, and the
fixed-sequence choice on hand-computed cases (tests/test_threshold_guarantee.py simulates its error rate)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta, binom, binomtest

from calscore.jobs.common.intervals import (
    clopper_pearson_lower,
    effective_sample_size,
    weighted_proportion,
    wilson_interval,
)
from calscore.jobs.reports.thresholds import (
    THRESHOLDS,
    choose_threshold,
    could_pass,
    describe_choice,
    format_table,
    guarantee_sentence,
    threshold_sequence,
    threshold_table,
)


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


def lowest_passing(table, target):
    """The rule before fixed-sequence testing: the lowest threshold of the scan whose bound reaches the target."""
    return next((r for r in table if r["lower_bound"] is not None and r["lower_bound"] >= target), None)


def test_threshold_table_and_choice_on_a_small_case():
    conf = np.array([0.55, 0.65, 0.75, 0.85, 0.95, 0.97, 0.99, 0.91, 0.92, 0.60])
    automatable = np.array([True] * 9 + [False])  # the last is off-format: never counted
    audit = np.array([True, True, True, True, True, True, True, False, True, True])
    correct = np.array([False, True, False, True, True, True, True, False, True, True])
    table = threshold_table(conf, automatable, audit, correct)
    assert [r["threshold"] for r in table] == list(THRESHOLDS) and THRESHOLDS[0] == 0.5 and THRESHOLDS[-1] == 0.99
    by_t = {r["threshold"]: r for r in table}
    at_90 = by_t[0.90]
    # rows >= 0.90: 0.95, 0.97, 0.99, 0.91, 0.92 (5); audit-labeled among them: 4, all right
    assert at_90["rows"] == 5 and at_90["audit_labels"] == 4 and at_90["accuracy"] == 1.0
    assert at_90["share"] == pytest.approx(0.5)
    assert at_90["lower_bound"] == pytest.approx(0.05 ** (1 / 4))
    at_50 = table[0]
    assert at_50["rows"] == 9 and at_50["audit_labels"] == 8 and at_50["accuracy"] == pytest.approx(6 / 8)

    # target 0.45: 4 labels all right give 0.05^(1/4) = 0.473 >= 0.45, 3 give 0.368, so the scan starts at
    # 0.92 (the highest threshold with 4 audit labels above it); 0.92 down to 0.76 pass (4 or 5 of 4 or 5
    # right); 0.75 has 5 of 6 right, whose bound p solves P(X >= 5 | 6, p) = 6 p^5 (1 - p) + p^6 = 0.05:
    # p = 0.418 < 0.45, so the scan stops there and 0.76 is chosen.
    p75 = by_t[0.75]["lower_bound"]
    assert 6 * p75**5 * (1 - p75) + p75**6 == pytest.approx(0.05, abs=1e-10) and p75 == pytest.approx(0.4182, abs=1e-4)
    seq = threshold_sequence(table, 0.45)
    assert seq["start"] is by_t[0.92] and seq["chosen"] is by_t[0.76] and seq["stopped"] is by_t[0.75]
    assert choose_threshold(table, 0.45) is by_t[0.76]
    # the rule before kept 0.56 (6 of 7 right: bound 0.479) though 0.66-0.75 fail below it
    assert binom.sf(5, 7, by_t[0.56]["lower_bound"]) == pytest.approx(0.05, abs=1e-10)
    assert lowest_passing(table, 0.45) is by_t[0.56]

    assert choose_threshold(table, 0.99) is None
    assert "no threshold" in describe_choice(table, 0.99, 10)
    sentence = describe_choice(table, 0.45, 10)
    assert sentence.startswith("threshold for 45%: 0.76; tested from 0.92 down") and "until 0.75 failed" in sentence
    assert sentence.endswith(guarantee_sentence(0.45))
    text = format_table(table, chosen=seq["chosen"], start=seq["start"], stopped=seq["stopped"])
    marks = {line.split()[0]: line.split("<- ")[1] for line in text.splitlines() if "<- " in line}
    assert marks == {"0.92": "first tested", "0.76": "chosen", "0.75": "first failure"}
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_threshold(table, 90)


def jump_curve_rows():
    """Audit labels on a curve with a jump: 60 at 0.95, all right; 20 at 0.85, half right; 200 at 0.60, all
    right. From the top: 0.95-0.86 have 60 of 60 right, 0.85-0.61 have 70 of 80, 0.60-0.50 have 270 of 280."""
    conf = np.repeat([0.95, 0.85, 0.60], [60, 20, 200])
    correct = np.concatenate([np.ones(60, bool), np.arange(20) % 2 == 0, np.ones(200, bool)])
    return conf, correct


def test_fixed_sequence_stops_at_the_first_failure_where_lowest_passing_jumps_past_it():
    conf, correct = jump_curve_rows()
    table = threshold_table(conf, np.ones(conf.size, bool), np.ones(conf.size, bool), correct)
    by_t = {r["threshold"]: r for r in table}
    low = {60: beta.ppf(0.05, 60, 1), 80: beta.ppf(0.05, 70, 11), 280: beta.ppf(0.05, 270, 11)}
    assert low[60] == pytest.approx(0.05 ** (1 / 60)) and low[60] > 0.90 > low[80] and low[280] > 0.90
    assert by_t[0.86]["lower_bound"] == pytest.approx(low[60]) and by_t[0.85]["lower_bound"] == pytest.approx(low[80])
    assert by_t[0.50]["lower_bound"] == pytest.approx(low[280])
    assert by_t[0.96]["audit_labels"] == 0 and by_t[0.96]["lower_bound"] is None

    seq = threshold_sequence(table, 0.90)
    # 0.99-0.96 have no audit labels, so they could not pass and the scan starts at 0.95
    assert seq["start"] is by_t[0.95] and seq["chosen"] is by_t[0.86] and seq["stopped"] is by_t[0.85]
    assert lowest_passing(table, 0.90) is by_t[0.50]  # what the old rule chose: past the failures at 0.61-0.85
    assert "until 0.85 failed (lower bound" in describe_choice(table, 0.90, conf.size)


def test_the_first_tested_threshold_failing_ends_the_scan():
    conf, correct = jump_curve_rows()
    correct[:3] = False  # 57 of 60 at 0.95: bound 0.875 < 0.90, while 0.60 and below still pass
    table = threshold_table(conf, np.ones(conf.size, bool), np.ones(conf.size, bool), correct)
    seq = threshold_sequence(table, 0.90)
    assert seq["start"]["threshold"] == 0.95 and seq["stopped"] is seq["start"] and seq["chosen"] is None
    assert seq["start"]["lower_bound"] == pytest.approx(beta.ppf(0.05, 57, 4))
    assert lowest_passing(table, 0.90)["threshold"] == 0.50
    assert describe_choice(table, 0.90, conf.size).startswith("no threshold can be chosen for 90%: the first one "
                                                             "tested, 0.95")


def test_the_start_reads_how_many_labels_not_whether_they_are_right():
    conf, correct = jump_curve_rows()
    ones = np.ones(conf.size, bool)
    for target in (0.80, 0.90, 0.95, 0.97):
        need = math.log(0.05) / math.log(target)  # n with 0.05^(1/n) = target: 13.4, 28.4, 58.4, 98.3
        first = max(t for t in THRESHOLDS if (conf >= t).sum() >= need)
        for labels in (correct, ~correct, np.zeros(conf.size, bool)):
            seq = threshold_sequence(threshold_table(conf, ones, ones, labels), target)
            assert seq["start"]["threshold"] == first
    assert first == 0.60  # 97%: 60 labels above 0.95 are too few, 280 above 0.60 are enough
    weights = np.where(conf == 0.95, 4.0, 1.0)  # weighted: the effective n decides (60 rows, n_eff 60)
    row = threshold_table(conf, ones, ones, correct, weights)[THRESHOLDS.index(0.95)]
    assert row["n_eff"] == pytest.approx(60) and could_pass(row, 0.95) and not could_pass(row, 0.96)
    none = threshold_table(conf[:10], ones[:10], ones[:10], correct[:10])
    assert threshold_sequence(none, 0.90) == {"target": 0.90, "start": None, "chosen": None, "stopped": None}
    assert "even if every label were right" in describe_choice(none, 0.90, 10)


def test_a_threshold_without_audit_labels_in_the_sequence_fails():
    rows = [{"threshold": t, "audit_labels": 50, "n_eff": 50.0, "lower_bound": 0.95, "level": 0.95}
            for t in (0.50, 0.60, 0.70, 0.80)]
    rows[2].update(audit_labels=0, n_eff=0.0, lower_bound=None)  # an inconsistent table: still no pass
    seq = threshold_sequence(rows, 0.90)
    assert seq["start"] is rows[3] and seq["chosen"] is rows[3] and seq["stopped"] is rows[2]


def test_fixed_sequence_against_a_reference_on_random_tables():
    """`threshold_sequence` against a plain array computation, on random non-monotone bounds."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        n_eff = rng.choice([0.0, 5.0, 30.0, 80.0], size=len(THRESHOLDS))
        low = np.where(n_eff > 0, rng.uniform(0.80, 0.99, len(THRESHOLDS)), np.nan)
        table = [{"threshold": t, "n_eff": n, "lower_bound": None if np.isnan(b) else b, "level": 0.95}
                 for t, n, b in zip(THRESHOLDS, n_eff, low)]
        testable = np.flatnonzero((n_eff > 0) & (0.05 ** (1 / np.maximum(n_eff, 1e-9)) >= 0.9))
        expected = None
        if testable.size:
            down = np.arange(testable.max(), -1, -1)
            fails = down[~(low[down] >= 0.9)]  # NaN compares False: no labels fail
            passed = down[down > fails[0]] if fails.size else down
            expected = THRESHOLDS[passed.min()] if passed.size else None
        chosen = choose_threshold(table, 0.9)
        assert (None if chosen is None else chosen["threshold"]) == expected


def test_the_guarantee_is_one_sentence():
    text = guarantee_sentence(0.90)
    assert text.count(". ") == 0 and text.endswith(".") and "90%" in text and "at most 5%" in text
    assert "whole scan" in text and "fixed order from the highest down" in text
    assert "99.9%" in guarantee_sentence(0.999) and "at most 1%" in guarantee_sentence(0.9, level=0.99)


def test_weighted_threshold_uses_effective_n():
    conf = np.full(6, 0.95)
    correct = np.array([True, True, True, True, True, False])
    w = np.array([1, 1, 1, 1, 4, 4], dtype=float)
    row = threshold_table(conf, np.ones(6, bool), np.ones(6, bool), correct, w)[0]
    p = 8 / 12
    n_eff = 144 / 36
    assert row["accuracy"] == pytest.approx(p) and row["n_eff"] == pytest.approx(n_eff)
    assert row["lower_bound"] == pytest.approx(beta.ppf(0.05, p * n_eff, n_eff - p * n_eff + 1))
