"""'How many labels do I need?': the label budget's answer per calibration method, checked against a brute-force
loop written here (its own fits, NLL and binned ECE), on labels drawn from a well-specified Platt model."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.special import expit, log_expit

from calscore.calibration_store import metrics
from calscore.calibration_store.methods import CANDIDATES
from calscore.calibration_store.platt import PlattCalibrator
from calscore.jobs.reports.html_report import write_report
from calscore.jobs.reports.label_budget import _figures, label_budget_chart, label_budgets
from calscore.jobs.reports.report_figures import REPORT_BUDGET_HOLDOUT, REPORT_BUDGET_SIZES
from synthetic_scores import synthetic_scores
from report_fixtures import fill_report_warehouse

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def platt_labels(n: int, seed: int = 7, a: float = 0.6, b: float = 0.3):
    """Two-label scores s whose true P(label 0) is sigmoid(a s + b): Platt scaling is the right model."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0.0, 2.0, n)
    logprobs = np.column_stack([log_expit(s), log_expit(-s)])
    y = (rng.random(n) >= expit(a * s + b)).astype(np.int64)
    return logprobs, y


def ref_nll(p, y):
    return float(np.mean([-np.log(max(row[t], np.finfo(float).eps)) for row, t in zip(p, y)]))


def ref_ece(p, y, n_bins=15):
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        m = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if m.any():
            total += m.sum() / len(conf) * abs(correct[m].mean() - conf[m].mean())
    return total


@pytest.fixture(scope="module")
def platt_data():
    logprobs, y = platt_labels(3_000)
    results = {tol: label_budgets(logprobs, y, ["a", "b"], ["platt"], nll_tolerance=tol[0], ece_tolerance=tol[1])
               for tol in ((0.0, 0.0), (0.002, 0.005), (0.01, 0.01), (0.05, 0.05))}
    return logprobs, y, results


def brute_force(logprobs, y, result):
    """Each subsample's Platt fit scored on the held-out rows, by hand: {size: [(nll, ece)]}, and the all-pool fit."""
    hold = result["holdout_index"]
    pool = np.setdiff1d(np.arange(y.shape[0]), hold)

    def fit_score(idx):
        p = PlattCalibrator(labels=["a", "b"]).fit(logprobs[idx], y[idx]).predict_proba(logprobs[hold])
        return ref_nll(p, y[hold]), ref_ece(p, y[hold])

    runs = {size: [fit_score(idx) for idx in draws[: result["n_repeats"]]]
            for size, draws in result["subsamples"].items()}
    return runs, fit_score(pool)


def test_the_stated_budget_is_the_smallest_size_meeting_the_90_percent_rule(platt_data):
    logprobs, y, results = platt_data
    first = next(iter(results.values()))
    runs, (nll_all, ece_all) = brute_force(logprobs, y, first)
    assert sorted(runs) == [100, 200, 500, 1000] and first["pool_n"] == 2_100  # sizes up to half the pool
    answers = []
    for (nll_tol, ece_tol), result in results.items():
        assert result["subsamples"].keys() == runs.keys()  # the same seeded draws whatever the tolerance
        curve = result["curves"]["platt"]
        expected = None
        for point in curve["points"][:-1]:
            within = sum(nll <= nll_all + nll_tol and ece <= ece_all + ece_tol for nll, ece in runs[point["size"]])
            assert point["failed_fits"] == 0 and point["n_fits"] == 20
            assert point["within"] == within and point["share_within"] == within / 20
            if expected is None and within >= 18:  # 90% of 20 subsamples
                expected = point["size"]
        answer = curve["answer"]
        assert answer["n"] == expected, (nll_tol, ece_tol)
        if expected is None:
            assert answer["sentence"].startswith("platt: more than the 2,100 labels you have")
        else:
            assert answer["sentence"].startswith(f"platt: {expected:,} labels are enough")
        assert f"NLL at most {nll_tol:g} nats and ECE at most {ece_tol:g} above" in answer["sentence"]
        answers.append(answer["n"])
    # both answers occur, and a looser tolerance never asks for more labels
    assert answers[0] is None and answers[-1] is not None
    sizes = [np.inf if n is None else n for n in answers]
    assert sizes == sorted(sizes, reverse=True)


def test_more_than_you_have_when_half_the_labels_fall_short():
    logprobs, y = platt_labels(400, seed=3)  # pool 280: only 100 is tried, and no tolerance is given
    result = label_budgets(logprobs, y, ["a", "b"], ["platt", "isotonic"], nll_tolerance=0.0, ece_tolerance=0.0,
                           share=1.0)
    for method in ("platt", "isotonic"):
        answer = result["curves"][method]["answer"]
        assert answer["n"] is None
        assert answer["sentence"] == (
            f"{method}: more than the 280 labels you have to fit on -- at no budget tried (up to 100, at most half "
            "of them) did 100% of the fits have held-out NLL at most 0 nats and ECE at most 0 above the fit on all "
            "280 labels.")


def test_every_registered_method_has_a_curve_on_held_out_rows(tmp_path):
    logprobs, y = platt_labels(900, seed=11)
    result = label_budgets(logprobs, y, ["a", "b"])
    assert result["methods"] == list(CANDIDATES) and set(result["curves"]) == set(CANDIDATES)
    hold = result["holdout_index"]
    for size, draws in result["subsamples"].items():
        assert all(np.intersect1d(idx, hold).size == 0 and idx.size == size for idx in draws)  # held-out honest
    for method, curve in result["curves"].items():
        assert [p["label"] for p in curve["points"]] == ["100", "200", "all"]
        assert all(p["n_fits"] >= 20 for p in curve["points"][:-1]) and curve["points"][-1]["n_fits"] == 1
        assert curve["answer"]["sentence"].startswith(f"{method}: ")
    out = label_budget_chart(result, tmp_path / "budget.png", highlight="platt")
    assert out["path"].read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="unknown calibration method"):
        label_budgets(logprobs, y, ["a", "b"], ["platt", "nope"])


def test_the_fast_figures_are_the_metrics_figures():
    rng = np.random.default_rng(0)
    for k in (2, 3):
        p = rng.dirichlet(np.ones(k), 500)
        y = rng.integers(0, k, 500)
        p[0], y[0] = np.eye(k)[1], 1  # a certain, correct row costs no NLL
        w = rng.uniform(0.2, 3.0, 500)
        fast = _figures(p, y, w, 15)
        assert fast["ece"] == pytest.approx(metrics.ece(p, y, weights=w), abs=1e-12)
        assert fast["nll"] == pytest.approx(metrics.nll(p, y, weights=w), abs=1e-12)
        assert fast["brier"] == pytest.approx(metrics.brier(p, y, weights=w), abs=1e-12)
        assert fast["accuracy"] == pytest.approx(metrics.accuracy(p, y, weights=w), abs=1e-12)


def test_the_report_states_the_deployed_recipe_s_answer_at_a_fixed_cost(tmp_path):
    spec = fill_report_warehouse(tmp_path / "calscore.duckdb")["spec"]
    page = write_report(spec, tmp_path / "out").read_text(encoding="utf-8")
    answers = re.findall(r"<li>(\w+): ([\d,]+ labels are enough|more than the [\d,]+ labels you have to fit on) -- "
                         r"[^<]*NLL at most 0\.01 nats and ECE at most 0\.01 above the fit on all [\d,]+ labels\.</li>",
                         page)
    assert [m for m, _ in answers] == ["platt"]  # the champion's recipe
    # however many labels: at most 5 budgets of 20 fits on at most 2,000 rows, and the one all-labels fit
    rows = synthetic_scores(60_000, 2, scale=2.0, lean=0.5, seed=3)
    result = label_budgets(rows.logprobs, rows.y, ["a", "b"], ["platt"], sizes=REPORT_BUDGET_SIZES,
                           max_holdout=REPORT_BUDGET_HOLDOUT)
    points = result["curves"]["platt"]["points"]
    assert sum(p["n_fits"] + p["failed_fits"] for p in points) <= 5 * 20 + 1
    assert max(p["size"] for p in points[:-1]) == 2000 and result["holdout_n"] == 2000
    assert "How many labels are enough" in page
