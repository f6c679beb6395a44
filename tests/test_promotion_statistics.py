"""The promotion rule's statistics: the paired bootstrap against hand-computed figures and scipy, its
cell-sum form for many rows against the row bootstrap, the minimum compared size, and seeded simulations
of how often the rule promotes, on all-label out-of-fold evidence, a challenger that is not better
(rarely: at most alpha = 5% plus simulation error, `auto`'s choice among recipes included) or a clearly
better one (almost always)."""
from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit
from synthetic_scores import synthetic_scores

from calscore.calibration_store.methods import CANDIDATES

from calscore.calibration_store import build_document, make_calibrator, metrics
from calscore.calibration_store import paired_comparison
from calscore.calibration_store.paired_comparison import BinnedEce, Interval, paired_bootstrap
from calscore.calibration_store.promotion import MIN_HOLDOUT, decide, verdict
from synthetic_scores import evidence_of

pytestmark = pytest.mark.minutes(1.3)

LABELS = ["positive", "negative"]
TV = "tv-0001"
START = datetime(2026, 3, 1, tzinfo=UTC)
ALPHA = 0.05  # one-sided: each bound of the paired intervals is a one-sided 95% bound


def label_times(n: int) -> np.ndarray:
    return np.array([START + timedelta(hours=i) for i in range(n)], dtype=object)


def two_labels(p_first: np.ndarray) -> np.ndarray:
    return np.column_stack([p_first, 1.0 - p_first])


def latent_rows(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Latent log-odds t ~ N(0, 1.5) of the first label, and labels drawn from expit(t) (0 = first label)."""
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, 1.5, n)
    return t, (rng.random(n) >= expit(t)).astype(np.int64)


def at_most_alpha(promoted: int, runs: int) -> bool:
    """The promotion count is consistent with a rate <= ALPHA: a one-sided binomial test does not reject at 1%."""
    return stats.binomtest(promoted, runs, ALPHA, alternative="greater").pvalue > 0.01


# --- against independent computations --------------------------------------------------------------


def test_point_differences_match_hand_computed_figures():
    y = np.array([0, 0, 1, 1])
    challenger = two_labels(np.array([0.8, 0.6, 0.3, 0.1]))  # p(true label) = .8, .6, .7, .9, all predicted right
    baseline = two_labels(np.full(4, 0.5))  # a tie: the first label is predicted, right on rows 0 and 1
    c = paired_bootstrap(challenger, baseline, y)
    # NLL gain = mean(log p_challenger(y)) - log(1/2)
    assert c.nll_gain.estimate == pytest.approx((math.log(0.8 * 0.6 * 0.7 * 0.9)) / 4 + math.log(2), abs=1e-12)
    # 15 equal-width bins: the four confidences fall in four bins, all right: ECE = (.2 + .4 + .3 + .1) / 4;
    # the baseline's one bin holds confidence .5 and accuracy .5: ECE 0
    assert c.ece_increase.estimate == pytest.approx(0.25, abs=1e-12)

    w = np.array([1.0, 1.0, 2.0, 2.0])
    cw = paired_bootstrap(challenger, baseline, y, w)
    assert cw.nll_gain.estimate == pytest.approx(
        (math.log(0.8) + math.log(0.6) + 2 * math.log(0.7) + 2 * math.log(0.9)) / 6 + math.log(2), abs=1e-12
    )
    # challenger (.2 + .4 + 2 * .3 + 2 * .1) / 6; baseline |accuracy 2/6 - .5| = 1/6
    assert cw.ece_increase.estimate == pytest.approx(1.4 / 6 - 1 / 6, abs=1e-12)


def test_the_estimates_are_the_reported_figures():
    t, y = latent_rows(1, 300)
    ch, base = two_labels(expit(t)), two_labels(expit(2 * t))
    w = np.random.default_rng(2).uniform(0.5, 4.0, 300)
    c = paired_bootstrap(ch, base, y, w)
    assert c.nll_gain.estimate == pytest.approx(metrics.nll(base, y, w) - metrics.nll(ch, y, w), abs=1e-12)
    assert c.ece_increase.estimate == pytest.approx(metrics.ece(ch, y, weights=w) - metrics.ece(base, y, weights=w),
                                                    abs=1e-12)


def test_equal_or_constant_differences_give_a_point_interval():
    t, y = latent_rows(3, 150)
    p = two_labels(expit(t))
    same = paired_bootstrap(p, p, y)
    assert same.nll_gain == Interval(0.0, 0.0, 0.0) and same.ece_increase == Interval(0.0, 0.0, 0.0)
    assert not verdict(same)[0]  # a challenger identical to the champion is never promoted
    # the challenger gives the true label twice the baseline's probability on every row: gain log 2 in every resample
    y = np.zeros(150, dtype=np.int64)
    c = paired_bootstrap(two_labels(np.full(150, 0.8)), two_labels(np.full(150, 0.4)), y)
    assert c.nll_gain.low == pytest.approx(math.log(2)) and c.nll_gain.high == pytest.approx(math.log(2))


def test_the_paired_intervals_agree_with_scipy_s_bootstrap_and_the_normal_approximation():
    t, y = latent_rows(4, 400)
    ch, base = two_labels(expit(t + 0.3)), two_labels(expit(1.6 * t))
    w = np.random.default_rng(5).uniform(0.5, 4.0, 400)
    ours = paired_bootstrap(ch, base, y, w, n_resamples=5000, seed=11)
    rows = np.arange(400)
    loss = {k: -np.log(p[rows, y]) for k, p in (("ch", ch), ("base", base))}

    def nll_gain(i, axis=-1):
        return np.sum(w[i] * (loss["base"][i] - loss["ch"][i]), axis=axis) / np.sum(w[i], axis=axis)

    def ece_increase(i):
        return metrics.ece(ch[i], y[i], weights=w[i]) - metrics.ece(base[i], y[i], weights=w[i])

    # one-sided 95% bounds = the ends of a two-sided 90% percentile interval
    def scipy_interval(statistic, vectorized, n_resamples):
        return stats.bootstrap((rows,), statistic, vectorized=vectorized, n_resamples=n_resamples, method="percentile",
                               confidence_level=1 - 2 * ALPHA, random_state=np.random.default_rng(12)).confidence_interval

    for ours_interval, ref in ((ours.nll_gain, scipy_interval(nll_gain, True, 20000)),
                               (ours.ece_increase, scipy_interval(ece_increase, False, 3000))):
        width = ref.high - ref.low
        assert ours_interval.low == pytest.approx(ref.low, abs=0.05 * width)
        assert ours_interval.high == pytest.approx(ref.high, abs=0.05 * width)
    # the NLL gain is a weighted mean: its bootstrap bounds are close to the normal ones (ratio estimator's delta method)
    d = loss["base"] - loss["ch"]
    mean = np.sum(w * d) / w.sum()
    se = np.sqrt(np.sum((w * (d - mean)) ** 2)) / w.sum()
    z = stats.norm.ppf(1 - ALPHA)
    assert ours.nll_gain.low == pytest.approx(mean - z * se, abs=0.1 * z * se)
    assert ours.nll_gain.high == pytest.approx(mean + z * se, abs=0.1 * z * se)


def test_the_ece_is_a_parameter_and_the_fast_binned_path_equals_calling_it():
    t, y = latent_rows(6, 200)
    ch, base = two_labels(expit(1.3 * t)), two_labels(expit(t - 0.4))
    w = np.random.default_rng(7).uniform(0.0, 3.0, 200)  # zero weights too
    fast = paired_bootstrap(ch, base, y, w, seed=3)
    binned = BinnedEce()
    called = paired_bootstrap(ch, base, y, w, seed=3, ece=lambda p, t_, w_: binned(p, t_, w_))  # no `resampled`
    assert fast.ece_metric == "ECE (15 equal-width bins)" and called.ece_metric == "<lambda>"
    for a, b in ((fast.nll_gain, called.nll_gain), (fast.ece_increase, called.ece_increase)):
        assert a == pytest.approx(b, abs=1e-12)

    def equal_mass_ece(p, t_, w_):
        return metrics.ece(p, t_, strategy="quantile", weights=w_)

    other = paired_bootstrap(ch, base, y, w, seed=3, ece=equal_mass_ece)
    assert other.ece_metric == "equal_mass_ece" and other.nll_gain == fast.nll_gain
    assert other.ece_increase.estimate == pytest.approx(equal_mass_ece(ch, y, w) - equal_mass_ece(base, y, w))
    # seeded: the same call gives the same bounds, another seed other bounds
    assert paired_bootstrap(ch, base, y, w, seed=3) == fast
    assert paired_bootstrap(ch, base, y, w, seed=4).nll_gain.low != fast.nll_gain.low


def test_bad_comparison_arguments_are_errors():
    t, y = latent_rows(8, 120)
    p = two_labels(expit(t))
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap(p, p, y, n_resamples=10)
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(p, p, y, level=0.4)
    with pytest.raises(ValueError, match="differ in shape"):
        paired_bootstrap(p, p[:100], y)
    with pytest.raises(ValueError, match="gain_level"):
        paired_bootstrap(p, p, y, gain_level=1.0)


def test_with_many_rows_the_cell_sums_give_the_row_bootstrap_s_bounds(monkeypatch):
    """Above LARGE_N rows the resampling runs on cell sums: the same bounds as the row bootstrap, within a few
    percent of the interval's width (both are Monte Carlo estimates of the same percentiles)."""
    rng = np.random.default_rng(13)
    n = paired_comparison.LARGE_N + 5000
    t = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) >= expit(0.8 * t + 0.2)).astype(np.int64)
    ch, base = two_labels(expit(0.8 * t + 0.2)), two_labels(expit(t))
    w = rng.choice([1.0, 3.0], n)
    cells = paired_bootstrap(ch, base, y, w, seed=1)
    assert cells.n == n and "cell sums" in cells.to_dict()["method"]
    monkeypatch.setattr(paired_comparison, "LARGE_N", 10 * n)
    rows = paired_bootstrap(ch, base, y, w, seed=1)
    assert rows.to_dict()["method"] == "paired bootstrap"
    assert cells.nll_gain.estimate == rows.nll_gain.estimate and cells.ece_increase.estimate == rows.ece_increase.estimate
    for a, b in ((cells.nll_gain, rows.nll_gain), (cells.ece_increase, rows.ece_increase)):
        width = b.high - b.low
        assert a.low == pytest.approx(b.low, abs=0.08 * width) and a.high == pytest.approx(b.high, abs=0.08 * width)


# --- the rule on constructed cases --------------------------------------------------------------------


def test_a_nll_gain_with_a_significantly_worse_ece_is_rejected():
    """Sharper but over-confident: the NLL gains over an uninformative, perfectly calibrated baseline, the ECE is worse."""
    t, y = latent_rows(10, 600)
    challenger = two_labels(expit(1.8 * t))  # informative, over-confident
    baseline = two_labels(np.full(600, 0.5))  # calibrated (ECE ~ |share of the first label - 1/2|), no information
    c = paired_bootstrap(challenger, baseline, y)
    assert c.nll_gain.low > 0 and c.ece_increase.low > 0
    promoted, reason = verdict(c, "the champion")
    assert not promoted and "ECE is significantly worse than the champion" in reason


def test_a_clearly_better_challenger_is_promoted():
    s = synthetic_scores(600, 2, scale=3.0, lean=1.5, seed=40)  # over-confident and leaning: Platt fixes both
    d = decide(s.logprobs, s.y, label_times(600), labels=LABELS, task_version=TV, method="platt",
               evidence=evidence_of(s, ["platt"], LABELS))
    assert d.promote and d.evaluation == "out-of-fold" and d.n_holdout == 600, d.reason
    assert d.comparison.nll_gain.low > 0 and d.comparison.ece_increase.low <= 0


def test_too_few_labels_in_all_are_refused():
    assert MIN_HOLDOUT == 100
    s = synthetic_scores(90, 2, scale=3.0, lean=1.5, seed=41)
    d = decide(s.logprobs, s.y, label_times(90), labels=LABELS, task_version=TV, method="platt", min_labels=10,
               evidence=evidence_of(s, ["platt"], LABELS))
    assert not d.promote and d.challenger is None and d.comparison is None and d.evaluation is None
    assert "only 90 labels (< min_holdout=100)" in d.reason


# --- simulations ---------------------------------------------------------------------------------------


def promotions(runs: int, comparison) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Platt on a calibrated model's fold may warn about convergence
        return sum(verdict(comparison(seed))[0] for seed in range(runs))


def test_simulation_an_equally_good_challenger_is_promoted_at_most_at_alpha():
    """Exactly equal by symmetry: expit(t - d) and expit(t + d) have the same expected NLL and ECE when t is symmetric
    and the labels are swapped along with it; compared on 120 rows."""

    def comparison(seed):
        t, y = latent_rows(seed, 120)
        return paired_bootstrap(two_labels(expit(t - 0.5)), two_labels(expit(t + 0.5)), y, seed=seed)

    promoted = promotions(1000, comparison)
    assert at_most_alpha(promoted, 1000), promoted  # observed 56 of 1000 (5.6% +- 0.7%)


def test_simulation_out_of_fold_evidence_of_an_already_calibrated_model_rarely_promotes():
    """The raw scores are calibrated already, so a fitted map can only be worse (noise): compared on every label's
    out-of-fold prediction, as a recalibration does, Platt alone and `auto`'s best of every recipe."""

    def platt(seed):
        s = synthetic_scores(300, 2, scale=1.0, lean=0.0, seed=seed)
        ev = evidence_of(s, ["platt"], LABELS)
        return paired_bootstrap(ev.probs["platt"], metrics.raw_probs(s.logprobs), s.y, seed=seed)

    promoted = promotions(400, platt)
    assert at_most_alpha(promoted, 400), promoted  # observed 0 of 400


def test_simulation_decide_with_auto_rarely_promotes_a_challenger_that_is_not_better():
    """Through `decide` with `auto`: the best of every recipe by out-of-fold NLL, against calibrated raw scores and
    against a champion whose recipe (temperature) is already right; the Bonferroni-adjusted bound keeps the rate."""
    promoted, runs = 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(40):
            s = synthetic_scores(300, 2, scale=2.0 if seed % 2 else 1.0, lean=0.0, seed=200 + seed)
            ev = evidence_of(s, ["temperature", *[m for m in CANDIDATES if m != "temperature"]], LABELS)
            champion = None
            if seed % 2:  # over-confident only: temperature scaling is the right map
                cal = make_calibrator("temperature", LABELS).fit(s.logprobs, s.y)
                champion = build_document(cal, "sentiment", TV, (START, START), 300, {})
            d = decide(s.logprobs, s.y, label_times(300), labels=LABELS, task_version=TV, method="auto",
                       evidence=ev, champion_document=champion, comparison_seed=seed)
            promoted, runs = promoted + (d.promote and not d.refresh), runs + 1
    assert at_most_alpha(promoted, runs), promoted  # observed 0 of 40


def test_simulation_a_clearly_better_challenger_is_promoted_almost_always():
    def comparison(seed):
        s = synthetic_scores(300, 2, scale=3.0, lean=1.5, seed=seed)
        ev = evidence_of(s, ["platt"], LABELS)
        return paired_bootstrap(ev.probs["platt"], metrics.raw_probs(s.logprobs), s.y, seed=seed)

    assert promotions(200, comparison) >= 0.9 * 200  # observed 200 of 200
