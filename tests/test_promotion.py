"""Champion / challenger on a time split; manual promote and rollback; everything recorded."""
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
from calscore.calibration_store.paired_comparison import Interval, PairedComparison
from calscore.calibration_store.champion_changes import promote, record_decision, rollback
from calscore.calibration_store.promotion import decide, verdict
from synthetic_scores import synthetic_scores

LABELS = ["positive", "negative"]
TV = "tv-0001"
START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def label_times(n: int) -> np.ndarray:
    """One label an hour, in arrival order."""
    return np.array([START + timedelta(hours=i) for i in range(n)], dtype=object)


def champion_doc(method: str, scores, rows: slice, fit_end: datetime) -> dict:
    cal = make_calibrator(method, LABELS).fit(scores.logprobs[rows], scores.y[rows])
    return build_document(cal, "sentiment", TV, (START, fit_end), int(scores.y[rows].shape[0]), {"nll": 0.0})


def test_first_challenger_is_compared_with_the_raw_scores_and_stored_exactly(empty_warehouse):
    s = synthetic_scores(600, 2, scale=2.5, lean=1.0, seed=31)
    times = label_times(600)
    d = decide(s.logprobs, s.y, times, labels=LABELS, task_version=TV, method="platt")
    assert d.promote, d.reason
    assert d.baseline == "raw" and "raw scores" in d.reason
    assert d.n_holdout == 120 and d.n_train == 480 and d.evaluation == "time split" and d.folds is None
    assert d.comparison.n == 120 and d.comparison.nll_gain.low > 0 and d.comparison.ece_increase.low <= 0
    assert np.array_equal(d.holdout_index, np.arange(480, 600))  # the newest 20%
    raw = metrics.nll(metrics.raw_probs(s.logprobs[480:]), s.y[480:])
    assert d.champion_metrics["nll"] == pytest.approx(raw)
    assert d.challenger_metrics["nll"] < raw
    # the challenger never saw the held-out slice: refitting on the first 480 rows gives the same map
    again = make_calibrator("platt", LABELS).fit(s.logprobs[:480], s.y[:480])
    assert np.array_equal(again.predict_proba(s.logprobs), d.challenger.predict_proba(s.logprobs))

    with writer(empty_warehouse) as con:
        con.execute("BEGIN TRANSACTION")  # as the recalibration job does
        version = record_decision(con, d, task_name="sentiment", actor="run-7")
        con.execute("COMMIT")
        stored = champion(con, TV)
        events = list_events(con, TV)
    assert stored["version"] == version
    assert stored["n_labels"] == 480
    assert stored["fit_window"] == {"start": START.isoformat(), "end": (START + timedelta(hours=479)).isoformat()}
    assert stored["heldout_metrics"]["nll"] == d.challenger_metrics["nll"]
    assert np.array_equal(load_document(stored, TV).predict_proba(s.logprobs), d.challenger.predict_proba(s.logprobs))
    assert [(e["event"], e["actor"]) for e in events] == [("fitted", "run-7"), ("promoted", "run-7")]
    figures = events[1]["metrics"]
    assert figures["n_holdout"] == 120 and figures["baseline"] == "raw"
    assert figures["evaluation"] == "time split" and figures["min_holdout"] == 100
    assert figures["challenger"]["nll"] == pytest.approx(d.challenger_metrics["nll"])
    # the paired intervals travel with the decision
    assert figures["comparison"]["nll_gain"] == pytest.approx(d.comparison.nll_gain._asdict())
    assert figures["comparison"]["ece_increase"] == pytest.approx(d.comparison.ece_increase._asdict())
    assert (figures["comparison"]["n"], figures["comparison"]["n_resamples"], figures["comparison"]["seed"]) == (120, 1000, 0)
    assert stored["heldout_metrics"]["evaluation"] == "time split"


def test_a_worse_challenger_is_refused_and_recorded(empty_warehouse):
    s = synthetic_scores(1500, 2, scale=1.0, lean=2.0, seed=32)  # a lean only a bias term fixes
    times = label_times(1500)
    good = champion_doc("platt", s, slice(0, 1000), START + timedelta(hours=999))
    with writer(empty_warehouse) as con:
        set_champion(con, save_calibrator(con, good, actor="run-1"), actor="run-1")
    d = decide(s.logprobs, s.y, times, labels=LABELS, task_version=TV, method="temperature", champion_document=good)
    assert not d.promote
    assert d.baseline == f"champion:{good['version']}"
    assert "not significantly better than the champion" in d.reason
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


def test_only_labels_newer_than_the_champion_s_fit_window_are_held_out():
    s = synthetic_scores(1000, 2, seed=33)
    times = label_times(1000)
    fit_end = START + timedelta(hours=899)  # the champion saw the first 900 labels
    doc = champion_doc("temperature", s, slice(0, 900), fit_end)
    d = decide(s.logprobs, s.y, times, labels=LABELS, task_version=TV, method="platt", champion_document=doc)
    assert d.n_holdout == 100 and d.n_train == 900
    assert np.array_equal(d.holdout_index, np.arange(900, 1000))

    assert d.evaluation == "time split"

    # a champion that saw every label leaves no time split: both methods are cross-fitted over all labels
    seen_all = champion_doc("temperature", s, slice(0, 1000), START + timedelta(hours=999))
    d = decide(s.logprobs, s.y, times, labels=LABELS, task_version=TV, method="platt", champion_document=seen_all)
    assert d.evaluation == "cross-fit" and d.folds == 5 and d.n_holdout == 1000 and d.n_train == 1000
    assert d.holdout_index.size == 0  # the stored challenger saw every label
    assert "0 labels after the champion's fit window" in d.reason and "temperature) refitted on each fold" in d.reason
    # the lean only Platt's bias term fixes: the cross-fitted gain over temperature scaling is significant
    assert d.promote and d.comparison.nll_gain.low > 0, d.reason


def test_a_challenger_needs_the_policy_s_minimum_labels(empty_warehouse):
    s = synthetic_scores(150, 2, scale=2.5, lean=1.0, seed=34)
    d = decide(s.logprobs, s.y, label_times(150), labels=LABELS, task_version=TV, method="platt", min_labels=200)
    assert not d.promote and d.challenger is None
    assert "min_labels=200" in d.reason
    with writer(empty_warehouse) as con:
        assert record_decision(con, d, task_name="sentiment", actor="run-3") is None
        assert list_events(con, TV) == []


def test_a_champion_of_another_task_version_is_refused():
    s = synthetic_scores(300, 2, seed=35)
    cal = make_calibrator("platt", LABELS).fit(s.logprobs, s.y)
    other = build_document(cal, "sentiment", "tv-other", (START, START), 300, {})
    with pytest.raises(DocumentError, match="another task version"):
        decide(s.logprobs, s.y, label_times(300), labels=LABELS, task_version=TV, champion_document=other)


def test_weights_enter_the_fit_and_the_held_out_figures():
    s = synthetic_scores(600, 2, scale=2.0, lean=0.5, seed=36)
    w = np.random.default_rng(0).uniform(1, 10, 600)
    d = decide(s.logprobs, s.y, label_times(600), labels=LABELS, task_version=TV, method="platt", weights=w)
    hold = d.holdout_index
    assert d.challenger_metrics["weighted"] is True
    assert d.challenger_metrics["nll"] == pytest.approx(
        metrics.nll(d.challenger.predict_proba(s.logprobs[hold]), s.y[hold], w[hold])
    )
    weighted_fit = make_calibrator("platt", LABELS).fit(s.logprobs[:480], s.y[:480], w[:480])
    assert np.array_equal(weighted_fit.predict_proba(s.logprobs), d.challenger.predict_proba(s.logprobs))


def test_times_may_be_datetimes_iso_strings_or_datetime64():
    s = synthetic_scores(200, 2, seed=37)
    aware = label_times(200)[::-1]  # arrival order is read from the times, not the row order
    iso = np.array([t.isoformat() for t in aware], dtype=object)
    naive64 = np.array([t.replace(tzinfo=None) for t in aware], dtype="datetime64[us]")
    picked = [
        decide(s.logprobs, s.y, times, labels=LABELS, task_version=TV, method="temperature", min_labels=10,
               min_holdout=30).holdout_index
        for times in (aware, iso, naive64)
    ]
    assert np.array_equal(picked[0], np.arange(40)) and all(np.array_equal(picked[0], p) for p in picked)


def comparison(gain: tuple[float, float], increase: tuple[float, float]) -> PairedComparison:
    return PairedComparison(n=120, nll_gain=Interval(sum(gain) / 2, *gain), ece_increase=Interval(sum(increase) / 2, *increase),
                            ece_metric="ECE", n_resamples=1000, seed=0, level=0.95)


def test_the_rule_needs_a_significant_nll_gain_and_guards_ece():
    assert verdict(comparison((0.01, 0.05), (-0.02, 0.03)))[0]
    assert verdict(comparison((0.01, 0.05), (0.0, 0.03)))[0]  # the ECE increase's interval reaches 0: not worse
    refused, reason = verdict(comparison((0.01, 0.05), (0.001, 0.03)))
    assert not refused and "guard" in reason and "significantly worse" in reason
    assert not verdict(comparison((0.0, 0.05), (-0.05, -0.01)))[0]  # a gain whose interval reaches 0 is noise
    assert not verdict(comparison((-0.05, -0.01), (-0.05, -0.01)))[0]


def test_bad_policy_values_are_errors():
    s = synthetic_scores(100, 2, seed=38)
    kwargs = dict(labels=LABELS, task_version=TV)
    with pytest.raises(ValueError, match="holdout_fraction"):
        decide(s.logprobs, s.y, label_times(100), holdout_fraction=1.0, **kwargs)
    with pytest.raises(ValueError, match="100 label times"):
        decide(s.logprobs, s.y, label_times(99), **kwargs)
    with pytest.raises(ValueError, match="unknown calibration method"):
        decide(s.logprobs, s.y, label_times(100), method="magic", **kwargs)


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
