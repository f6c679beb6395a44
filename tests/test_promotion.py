"""Champion / challenger on every label's out-of-fold evidence, the forward check, refresh; manual promote and
rollback; everything recorded."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from calscore.jobs.warehouse.connection import writer
from calscore.calibration_store import (
    DocumentError,
    build_document,
    champion,
    list_calibrators,
    list_events,
    load_document,
    make_calibrator,
    metrics,
    save_calibrator,
    set_champion,
)
from sklearn.metrics import log_loss

from calscore.calibration_store.document import recipe_of
from calscore.calibration_store.evidence import certification_slice, stable_folds
from calscore.calibration_store.methods import CANDIDATES
from calscore.calibration_store.paired_comparison import Interval, PairedComparison
from calscore.calibration_store.champion_changes import promote, record_decision, rollback
from calscore.calibration_store.promotion import decide, verdict
from synthetic_scores import evidence_of, row_ids, synthetic_scores

LABELS = ["positive", "negative"]
TV = "tv-0001"
START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def label_times(n: int) -> np.ndarray:
    """One label an hour."""
    return np.array([START + timedelta(hours=i) for i in range(n)], dtype=object)


def champion_doc(method: str, scores, rows: slice, fit_end: datetime) -> dict:
    cal = make_calibrator(method, LABELS).fit(scores.logprobs[rows], scores.y[rows])
    return build_document(cal, "sentiment", TV, (START, fit_end), int(scores.y[rows].shape[0]), {"nll": 0.0})


def decide_on(s, method="platt", recipes=None, weights=None, **kwargs):
    """`decide` on the out-of-fold evidence of the method (or `recipes`) and the champion's recipe."""
    recipes = recipes or ([method] if method != "auto" else list(CANDIDATES))
    champ = kwargs.get("champion_document")
    if champ is not None and recipe_of(champ) not in recipes:
        recipes = [*recipes, recipe_of(champ)]
    n = s.y.shape[0]
    return decide(s.logprobs, s.y, kwargs.pop("times", label_times(n)), labels=LABELS, task_version=TV,
                  evidence=evidence_of(s, recipes, LABELS, weights), method=method, weights=weights, **kwargs)


def test_first_challenger_is_compared_with_the_raw_scores_on_every_label_and_stored_exactly(empty_warehouse):
    s = synthetic_scores(600, 2, scale=2.5, lean=1.0, seed=31)
    d = decide_on(s)
    assert d.promote, d.reason
    assert d.baseline == "raw" and "raw scores" in d.reason
    assert d.n_holdout == 600 and d.n_train == 600 and d.evaluation == "out-of-fold" and d.folds == 5
    assert d.comparison.n == 600 and d.comparison.nll_gain.low > 0 and d.comparison.ece_increase.low <= 0
    # the compared challenger probabilities: each row from a Platt map fitted by hand on the other folds
    fold = stable_folds("sentiment", row_ids(600), 5)
    by_hand = np.empty((600, 2))
    for k in range(5):
        fit = make_calibrator("platt", LABELS).fit(s.logprobs[fold != k], s.y[fold != k])
        by_hand[fold == k] = fit.predict_proba(s.logprobs[fold == k])
    assert d.challenger_metrics["nll"] == pytest.approx(log_loss(s.y, by_hand, labels=[0, 1]))
    assert d.champion_metrics["nll"] == pytest.approx(log_loss(s.y, metrics.raw_probs(s.logprobs), labels=[0, 1]))
    # the stored challenger is the recipe fitted on every label
    every = make_calibrator("platt", LABELS).fit(s.logprobs, s.y)
    assert np.array_equal(every.predict_proba(s.logprobs), d.challenger.predict_proba(s.logprobs))

    with writer(empty_warehouse) as con:
        con.execute("BEGIN TRANSACTION")  # as the recalibration job does
        version = record_decision(con, d, task_name="sentiment", actor="run-7")
        con.execute("COMMIT")
        stored = champion(con, TV)
        events = list_events(con, TV)
    assert stored["version"] == version
    assert stored["n_labels"] == 600
    assert stored["fit_window"] == {"start": START.isoformat(), "end": (START + timedelta(hours=599)).isoformat()}
    assert stored["heldout_metrics"]["nll"] == d.challenger_metrics["nll"]
    assert [(e["event"], e["actor"]) for e in events] == [("fitted", "run-7"), ("promoted", "run-7")]
    figures = events[1]["metrics"]
    assert figures["n_holdout"] == 600 and figures["baseline"] == "raw" and figures["min_holdout"] == 100
    assert (figures["evaluation"], figures["folds"], figures["fold_seed"]) == ("out-of-fold", 5, 0)
    assert figures["forward"] == {"ran": False, "refuses": False, "reason": "the labels' nights are unknown"}
    assert figures["challenger"]["nll"] == pytest.approx(d.challenger_metrics["nll"])
    # the paired intervals travel with the decision
    assert figures["comparison"]["nll_gain"] == pytest.approx(d.comparison.nll_gain._asdict())
    assert figures["comparison"]["ece_increase"] == pytest.approx(d.comparison.ece_increase._asdict())
    assert (figures["comparison"]["n"], figures["comparison"]["n_resamples"], figures["comparison"]["seed"]) == (600, 1000, 0)
    assert stored["heldout_metrics"]["evaluation"] == "out-of-fold"


def test_a_worse_challenger_is_refused_and_recorded(empty_warehouse):
    s = synthetic_scores(1500, 2, scale=1.0, lean=2.0, seed=32)  # a lean only a bias term fixes
    good = champion_doc("platt", s, slice(0, 1000), START + timedelta(hours=999))
    with writer(empty_warehouse) as con:
        set_champion(con, save_calibrator(con, good, actor="run-1"), actor="run-1")
    d = decide_on(s, "temperature", champion_document=good)
    assert not d.promote
    assert d.baseline == f"champion:{good['version']}"
    assert "not significantly better than the champion's recipe (platt)" in d.reason
    assert d.challenger_metrics["nll"] > d.champion_metrics["nll"]
    assert d.comparison.nll_gain.high < 0  # not just insignificant: worse
    with writer(empty_warehouse) as con:
        version = record_decision(con, d, task_name="sentiment", actor="run-2")
        assert champion(con, TV)["version"] == good["version"]
        statuses = {r["version"]: r["status"] for r in list_calibrators(con, TV)}
        last = list_events(con, TV)[-1]
    assert statuses == {good["version"]: "champion", version: "candidate"}
    assert (last["version"], last["event"], last["actor"]) == (version, "rejected", "run-2")
    assert last["metrics"]["challenger"]["nll"] > last["metrics"]["baseline_metrics"]["nll"]


def test_the_champion_s_own_recipe_is_refreshed_on_new_labels_and_left_alone_without():
    s = synthetic_scores(1000, 2, scale=2.5, lean=1.0, seed=33)
    old = champion_doc("platt", s, slice(0, 800), START + timedelta(hours=799))
    d = decide_on(s, "platt", champion_document=old)
    assert d.refresh and d.promote and d.reason.startswith("refresh: the champion's recipe (platt)"), d.reason
    assert "all 1000 labels (the champion saw 800)" in d.reason and d.forward["ran"] is False
    # the same labels again: the refit is the champion itself, nothing to store
    same = build_document(d.challenger, "sentiment", TV, d.fit_window, 1000, {"nll": 0.0})
    again = decide_on(s, "platt", champion_document=same)
    assert not again.promote and again.challenger is None and "no label changed since its fit" in again.reason


def test_auto_chooses_the_lowest_out_of_fold_nll_and_pays_for_the_choice_with_its_bound():
    s = synthetic_scores(600, 2, scale=2.5, lean=1.0, seed=34)
    d = decide_on(s, "auto")
    ev = evidence_of(s, CANDIDATES, LABELS)
    nlls = {r: metrics.nll(ev.probs[r], s.y) for r in ev.probs}
    assert d.method == min(nlls, key=nlls.get)
    assert {r: f["nll"] for r, f in d.candidates.items()} == pytest.approx(nlls)
    m = len(ev.probs)
    assert d.comparison.gain_level == pytest.approx(1 - 0.05 / m) and d.comparison.level == 0.95
    assert f"the best of {m} recipes" in d.reason
    stored = d.challenger.to_dict()
    assert stored["method"] == "auto" and stored["params"]["chosen"] == d.method
    assert stored["params"]["cv_nll"] == pytest.approx(nlls)


def test_a_challenger_significantly_worse_on_the_newest_night_is_refused():
    """Night 1 leans (Platt fixes it); night 2 does not: the pooled folds say promote, the forward check refuses."""
    before = synthetic_scores(800, 2, scale=1.0, lean=2.5, seed=35)
    after = synthetic_scores(400, 2, scale=1.0, lean=-1.0, seed=36)
    s = type(before)(*(np.concatenate([a, b]) for a, b in zip(before, after)))
    nights = np.array(["2026-03-01"] * 800 + ["2026-03-02"] * 400)
    pooled = decide_on(s, "platt")
    assert pooled.promote and pooled.forward["ran"] is False, pooled.reason  # no nights: no forward check
    d = decide_on(s, "platt", nights=nights)
    assert d.forward["ran"] and d.forward["refuses"] and d.forward["newest_night"] == "2026-03-02"
    assert (d.forward["n_fit"], d.forward["n_test"]) == (800, 400)
    assert d.forward["comparison"]["nll_gain"]["high"] < 0
    assert not d.promote and "the forward check refuses" in d.reason
    # by hand: Platt fitted on night 1, against the raw scores on night 2
    fit = make_calibrator("platt", LABELS).fit(before.logprobs, before.y)
    gain = (log_loss(after.y, metrics.raw_probs(after.logprobs), labels=[0, 1])
            - log_loss(after.y, fit.predict_proba(after.logprobs), labels=[0, 1]))
    assert d.forward["comparison"]["nll_gain"]["estimate"] == pytest.approx(gain)


def test_a_forward_check_needs_rows_on_both_sides_and_says_why_it_did_not_run():
    s = synthetic_scores(300, 2, scale=2.5, lean=1.0, seed=37)
    one = decide_on(s, "platt", nights=np.array(["2026-03-01"] * 300))
    assert one.forward == {"ran": False, "refuses": False, "reason": "the labels span one night (2026-03-01)"}
    few = decide_on(s, "platt", nights=np.array(["2026-03-01"] * 290 + ["2026-03-02"] * 10))
    assert not few.forward["ran"] and "10 labels on the newest night 2026-03-02 (needs 30)" in few.forward["reason"]


def test_too_few_labels_are_refused_before_anything_is_fitted(empty_warehouse):
    s = synthetic_scores(150, 2, scale=2.5, lean=1.0, seed=38)
    d = decide_on(s, "platt", min_labels=200)
    assert not d.promote and d.challenger is None and "min_labels=200" in d.reason
    d = decide_on(s, "platt", min_labels=10, min_holdout=160)
    assert not d.promote and d.challenger is None and d.comparison is None
    assert "only 150 labels (< min_holdout=160)" in d.reason
    with writer(empty_warehouse) as con:
        assert record_decision(con, d, task_name="sentiment", actor="run-3") is None
        assert list_events(con, TV) == []


def test_a_champion_of_another_task_version_is_refused():
    s = synthetic_scores(300, 2, seed=39)
    cal = make_calibrator("platt", LABELS).fit(s.logprobs, s.y)
    other = build_document(cal, "sentiment", "tv-other", (START, START), 300, {})
    with pytest.raises(DocumentError, match="another task version"):
        decide_on(s, "platt", champion_document=other)


def test_weights_enter_the_fits_and_the_figures():
    s = synthetic_scores(600, 2, scale=2.0, lean=0.5, seed=40)
    w = np.random.default_rng(0).uniform(1, 10, 600)
    d = decide_on(s, "platt", weights=w)
    assert d.challenger_metrics["weighted"] is True
    ev = evidence_of(s, ["platt"], LABELS, w)
    assert d.challenger_metrics["nll"] == pytest.approx(log_loss(s.y, ev.probs["platt"], sample_weight=w))
    weighted_fit = make_calibrator("platt", LABELS).fit(s.logprobs, s.y, w)
    assert np.array_equal(weighted_fit.predict_proba(s.logprobs), d.challenger.predict_proba(s.logprobs))


def test_times_may_be_datetimes_iso_strings_or_datetime64():
    s = synthetic_scores(200, 2, seed=41)
    aware = label_times(200)[::-1]
    iso = np.array([t.isoformat() for t in aware], dtype=object)
    naive64 = np.array([t.replace(tzinfo=None) for t in aware], dtype="datetime64[us]")
    windows = [decide_on(s, "temperature", times=times, min_labels=10).fit_window for times in (aware, iso, naive64)]
    assert windows[0] == (START.isoformat(), (START + timedelta(hours=199)).isoformat())
    assert windows[0] == windows[1] == windows[2]


def comparison(gain: tuple[float, float], increase: tuple[float, float]) -> PairedComparison:
    return PairedComparison(n=120, nll_gain=Interval(sum(gain) / 2, *gain), ece_increase=Interval(sum(increase) / 2, *increase),
                            ece_metric="ECE", n_resamples=1000, seed=0, level=0.95, gain_level=0.95)


def test_the_rule_needs_a_significant_nll_gain_and_guards_ece():
    assert verdict(comparison((0.01, 0.05), (-0.02, 0.03)))[0]
    assert verdict(comparison((0.01, 0.05), (0.0, 0.03)))[0]  # the ECE increase's interval reaches 0: not worse
    refused, reason = verdict(comparison((0.01, 0.05), (0.001, 0.03)))
    assert not refused and "guard" in reason and "significantly worse" in reason
    assert not verdict(comparison((0.0, 0.05), (-0.05, -0.01)))[0]  # a gain whose interval reaches 0 is noise
    assert not verdict(comparison((-0.05, -0.01), (-0.05, -0.01)))[0]


def test_bad_policy_values_are_errors():
    s = synthetic_scores(100, 2, seed=42)
    ev = evidence_of(s, ["temperature"], LABELS)
    kwargs = dict(labels=LABELS, task_version=TV, evidence=ev)
    with pytest.raises(ValueError, match="100 label times"):
        decide(s.logprobs, s.y, label_times(99), **kwargs)
    with pytest.raises(ValueError, match="unknown calibration method"):
        decide(s.logprobs, s.y, label_times(100), method="magic", **kwargs)
    with pytest.raises(ValueError, match="the evidence covers 100 rows, the labels 99"):
        decide(s.logprobs[:99], s.y[:99], label_times(99), **kwargs)
    with pytest.raises(ValueError, match="min_holdout"):
        decide(s.logprobs, s.y, label_times(100), min_holdout=0, **kwargs)


# --- manual levers ---------------------------------------------------------------------------


def test_manual_promote_and_rollback_walk_the_champion_history(empty_warehouse):
    s = synthetic_scores(300, 2, seed=39)
    docs = {
        m: build_document(make_calibrator(m, LABELS).fit(s.logprobs, s.y), "sentiment", TV, (START, START), 300, {})
        for m in ("platt", "temperature", "beta")
    }
    a, b, c = (docs[m]["version"] for m in ("platt", "temperature", "beta"))
    with writer(empty_warehouse) as con:
        with pytest.raises(ValueError, match="no champion"):
            rollback(con, TV, "ana", "nothing to undo")
        for doc in docs.values():
            save_calibrator(con, doc, actor="run-1")
        set_champion(con, a, actor="run-1")
        with pytest.raises(ValueError, match="no previous champion"):
            rollback(con, TV, "ana", "first champion")
        set_champion(con, b, actor="run-2")
        assert rollback(con, TV, "ana", "b mislabels sports texts") == a
        assert champion(con, TV)["version"] == a
        with pytest.raises(ValueError, match="no previous champion"):
            rollback(con, TV, "ana", "again")  # b was undone; nothing before a
        assert promote(con, c, "bo", "reviewed the beta fit") == a
        with pytest.raises(ValueError, match="already is the champion"):
            promote(con, c, "bo", "twice")
        with pytest.raises(ValueError, match="no calibrator"):
            promote(con, "0000000000000000", "bo", "typo")
        with pytest.raises(ValueError, match="reason"):
            promote(con, b, "bo", "")
        assert rollback(con, TV, "ana", "c was premature") == a
        statuses = {r["version"]: r["status"] for r in list_calibrators(con, TV)}
        events = [(e["version"], e["event"], e["actor"], e["reason"]) for e in list_events(con, TV)]
    assert statuses == {a: "champion", b: "retired", c: "retired"}
    assert (a, "rollback", "ana", "b mislabels sports texts") in events
    assert (c, "manual_promote", "bo", "reviewed the beta fit") in events
    assert events[-1] == (a, "rollback", "ana", "c was premature")
    assert sum(1 for e in events if e[1] == "retired") == 4  # a, b, a, c each lost the title once


def test_folds_are_a_fixed_hash_of_task_and_row_id():
    """The fold (and the certification slice) of a row never changes: FNV-1a and splitmix64 recomputed here
    byte by byte in plain Python give the same folds; the folds are balanced and the slice takes its share."""
    def unit(key: str) -> float:
        h = 0xCBF29CE484222325
        for byte in key.encode():
            h = ((h ^ byte) * 0x100000001B3) % 2**64
        for _ in range(max(len(f"fold:0\x1fsentiment\x1f{r}".encode()) for r in ids) - len(key.encode())):
            h = (h * 0x100000001B3) % 2**64  # the NUL padding to the longest key
        h ^= h >> 30
        h = (h * 0xBF58476D1CE4E5B9) % 2**64
        h ^= h >> 27
        h = (h * 0x94D049BB133111EB) % 2**64
        h ^= h >> 31
        return (h >> 11) / 2.0**53

    ids = row_ids(2_000) + ["a-longer-row-id-than-the-others-éü"]
    fold = stable_folds("sentiment", ids, 5)
    assert fold.tolist() == [min(int(unit(f"fold:0\x1fsentiment\x1f{r}") * 5), 4) for r in ids]
    assert np.bincount(fold).min() > 350  # about 400 each
    again = stable_folds("sentiment", list(reversed(ids)), 5)
    assert again.tolist() == fold.tolist()[::-1]  # a row's fold, not its position
    share = certification_slice("sentiment", ids, np.ones(len(ids), bool), 0.2).mean()
    assert 0.17 < share < 0.23


def test_evidence_fits_use_at_most_a_seeded_subsample_of_their_training_rows(monkeypatch):
    """Past EVIDENCE_FIT_ROWS training rows a fold's map is fitted on a seeded random subsample of them (the cost
    stays bounded at hundreds of thousands of labels); every prediction is still out-of-fold."""
    from calscore.calibration_store import evidence

    monkeypatch.setattr(evidence, "EVIDENCE_FIT_ROWS", 300)
    s = synthetic_scores(1_000, 2, scale=2.5, lean=1.0, seed=44)
    fold = stable_folds("sentiment", row_ids(1_000), 5)
    got = evidence.out_of_fold(["platt"], LABELS, s.logprobs, s.y, None, fold, 5).probs["platt"]
    by_hand = np.empty((1_000, 2))
    for k in range(5):
        train = np.random.default_rng(k).choice(np.flatnonzero(fold != k), size=300, replace=False)
        fit = make_calibrator("platt", LABELS).fit(s.logprobs[np.sort(train)], s.y[np.sort(train)])
        by_hand[fold == k] = fit.predict_proba(s.logprobs[fold == k])
    np.testing.assert_allclose(got, by_hand, rtol=0, atol=1e-12)
