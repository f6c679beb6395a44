"""How a partial first-token distribution (a top-k list) is represented: against the full distribution
of a real tiny model, and through the calibrators' validation."""
from __future__ import annotations

import numpy as np
import pytest

from calscore.calibration_store import make_calibrator
from calscore.calibration_store.validation import check_logprobs
from calscore.jobs.scoring.engine.first_token import FirstTokenScorer
from calscore.jobs.scoring.model_loading import load_model
from calscore.jobs.scoring.schema import MIN_IMPUTED_PROBABILITY, impute_unobserved, score_table
from tiny_models import tiny_spec

TEXTS = ["a warm, funny film", "the jokes fall flat", "Yes", "no", "sports business science", "x" * 40]


@pytest.mark.parametrize("k", [2, 5])
def test_a_top_k_list_gives_exact_observed_labels_and_bounded_missing_ones(tiny_model, k):
    spec = tiny_spec(tiny_model)
    scorer = FirstTokenScorer(load_model(spec.model), spec.prompt, spec.labels)
    full = scorer.token_logprobs(TEXTS).astype(np.float64)  # (n, vocab)
    exact = scorer.score(TEXTS)
    true_lp = np.array(exact["label_logprobs"].to_pylist())
    # what an endpoint would return: the k most likely tokens
    top = np.argsort(-full, axis=1)[:, :k]
    top_p = np.exp(np.take_along_axis(full, top, axis=1))
    mass = np.full(true_lp.shape, np.nan)
    for row in range(len(TEXTS)):
        for j, ids in enumerate(scorer.verbalizers.token_ids):
            listed = [p for t, p in zip(top[row], top_p[row]) if t in ids]
            if listed:
                mass[row, j] = sum(listed)
    lp, missing = impute_unobserved(mass, top_p.min(axis=1), top_p.sum(axis=1))
    table = score_table(lp, scorer.labels, [False] * len(TEXTS), [None] * len(TEXTS), unobserved=missing)

    assert np.isfinite(lp).all()
    fully_listed = np.array([[all(t in top[r] for t in ids) for ids in scorer.verbalizers.token_ids]
                             for r in range(len(TEXTS))])
    assert np.allclose(lp[fully_listed], true_lp[fully_listed], atol=1e-6)  # every token listed: exact
    truth_p = np.exp(true_lp)
    bound = np.minimum(top_p.min(axis=1), 1 - top_p.sum(axis=1))[:, None] * np.ones_like(truth_p)
    assert (truth_p[missing] <= bound[missing] + 1e-9).all()  # a missing label's true mass is within the bound
    assert (np.exp(lp[missing]) <= bound[missing] + 1e-12).all()
    coverage = np.array(table["coverage"].to_pylist())
    assert (coverage <= np.array(exact["coverage"].to_pylist()) + 1e-9).all()  # a lower bound
    assert table["coverage_is_lower_bound"].to_pylist() == list(missing.any(axis=1))
    assert [len(u) for u in table["unobserved_labels"].to_pylist()] == list(missing.sum(axis=1))
    any_listed = np.array([[any(t in top[r] for t in ids) for ids in scorer.verbalizers.token_ids]
                           for r in range(len(TEXTS))])
    assert np.array_equal(missing, ~any_listed) and missing.any()  # a short list misses label tokens
    check_logprobs(lp, len(scorer.labels))  # calibrators accept the rows as they are


def test_label_mass_never_exceeds_one_and_nothing_is_minus_infinity():
    # two labels missing, a large unreported remainder: each gets a share, capped at the last listed token
    lp, missing = impute_unobserved(np.array([[0.5, np.nan, np.nan], [np.nan, np.nan, np.nan], [0.7, 0.3, np.nan]]),
                                    smallest_reported=np.array([0.05, 0.2, 0.3]),
                                    reported_total=np.array([0.6, 0.5, 1.0]))
    assert missing.tolist() == [[False, True, True], [True, True, True], [False, False, True]]
    assert np.exp(lp[0]) == pytest.approx([0.5, 0.05, 0.05])
    assert np.exp(lp[1]) == pytest.approx([0.5 / 3] * 3)
    assert np.exp(lp[2, 2]) == pytest.approx(MIN_IMPUTED_PROBABILITY)  # nothing left unreported
    assert (np.logaddexp.reduce(lp, axis=1) <= 1e-12).all()
    cal = make_calibrator("temperature", labels=["a", "b", "c"]).fit(np.vstack([lp] * 10), np.tile([0, 1, 0], 10))
    assert np.isfinite(cal.predict_proba(lp)).all()


def test_minus_infinity_is_refused_with_the_representation_named():
    with pytest.raises(ValueError, match="impute_unobserved"):
        score_table(np.array([[-0.1, -np.inf]]), ["a", "b"], [False], [1])
    with pytest.raises(ValueError, match="imputed"):
        check_logprobs(np.array([[-0.1, -np.inf]]), 2)
