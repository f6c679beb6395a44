"""The combined calibrator learns from labels how much each signal is worth, and the comparison
with each signal alone is held-out (cross-fitted on the same folds)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from scipy.special import expit

from calscore.calibration_store.combined import (CombinedCalibrator, agreement_logprobs, calibrator_input,
                                                 stack_signals, stored_agreement)
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.signal_comparison import compare_signals, signal_comparison_markdown

LABELS = ["positive", "negative"]


def two_signals(n: int, seed: int, informative: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label log-probabilities and smoothed agreement (10 samples) for n rows; one signal knows the label."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    margin = np.where(y == 0, 1.5, -1.5) + rng.normal(0, 1.2, n)  # positive label is index 0
    noise = rng.normal(0, 1.5, n)
    lp_margin, agree_margin = (margin, noise) if informative == "logprobs" else (noise, margin)
    p_pos = expit(lp_margin)
    logprobs = np.log(np.column_stack([p_pos, 1 - p_pos]) * 0.9)
    votes = rng.binomial(10, expit(agree_margin))
    agreement = np.column_stack([votes, 10 - votes]) / 10
    return logprobs, agreement_logprobs(agreement, np.full(n, 10), 0.5), y


@pytest.mark.parametrize("informative", ["logprobs", "agreement"])
def test_the_fit_weighs_the_signal_that_carries_the_label(informative):
    lp, agree, y = two_signals(600, 1, informative)
    model = CombinedCalibrator(LABELS).fit(stack_signals(lp, agree), y).models_[0]
    strong, weak = ((model["logprob_slope"], model["agreement_slope"]) if informative == "logprobs"
                    else (model["agreement_slope"], model["logprob_slope"]))
    assert abs(strong) > 0.5 and abs(weak) < abs(strong) / 4


def test_held_out_the_pair_is_no_worse_than_the_better_signal_and_beats_the_other():
    lp, agree, y = two_signals(800, 2, "agreement")
    result = compare_signals(LABELS, lp, agree, y, folds=5)
    assert {r["n"] for r in result.values()} == {800}
    assert result["agreement"]["nll"] < result["logprobs"]["nll"] - 0.1
    assert result["combined"]["nll"] <= result["agreement"]["nll"] + 0.01
    table = signal_comparison_markdown(result)
    assert table.count("\n") == 4 and "| combined | 800 |" in table


def test_it_round_trips_through_json_and_predicts_the_same():
    lp, agree, y = two_signals(200, 3, "logprobs")
    cal = CombinedCalibrator(LABELS).fit(stack_signals(lp, agree), y)
    again = CombinedCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert np.array_equal(again.predict_proba(stack_signals(lp, agree)), cal.predict_proba(stack_signals(lp, agree)))
    probs = cal.predict_proba(calibrator_input(cal, lp, agree))
    assert np.allclose(probs.sum(axis=1), 1.0) and ((probs >= 0) & (probs <= 1)).all()


def test_three_labels_and_bad_input():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 300)
    lp = np.log(np.full((300, 3), 0.2) + np.eye(3)[y] * 0.3 * rng.random((300, 1)))
    agree = agreement_logprobs(np.eye(3)[y] * 0.6 + 0.1, np.full(300, 10), 0.5)
    both = stack_signals(lp, agree)
    probs = make_calibrator("combined", ["a", "b", "c"]).fit(both, y).predict_proba(both)
    assert probs.shape == (300, 3) and np.allclose(probs.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="rows of log-probabilities but"):
        stack_signals(lp, agree[:10])
    with pytest.raises(ValueError, match=r"reads \(n, 6\) inputs"):
        CombinedCalibrator(["a", "b", "c"]).fit(lp, y)
    with pytest.raises(ValueError, match="these rows have none"):
        calibrator_input(CombinedCalibrator(["a", "b", "c"]), lp, None)
    platt = make_calibrator("platt", ["a", "b", "c"])
    assert calibrator_input(platt, lp, agree) is lp  # a log-probability calibrator reads them alone
    with pytest.raises(ValueError, match="smoothing must be positive"):
        agreement_logprobs(np.zeros((1, 2)), np.array([5]), 0.0)


def test_stored_agreement_reads_the_warehouse_columns():
    agreement = pa.array([[("positive", 0.8), ("negative", 0.1)], [("negative", 0.5), ("positive", 0.5)]],
                         pa.map_(pa.string(), pa.float64()))
    samples = pa.array([10, 4], pa.int32())
    got = stored_agreement(agreement, samples, LABELS, 0.5)
    assert np.allclose(np.exp(got), [[8.5 / 11.5, 1.5 / 11.5], [2.5 / 5.5, 2.5 / 5.5]])
    assert stored_agreement(pa.nulls(2, agreement.type), pa.nulls(2, pa.int32()), LABELS, 0.5) is None
    with pytest.raises(ValueError, match="mixed"):
        stored_agreement(pa.array([agreement[0].as_py(), None], agreement.type), samples, LABELS, 0.5)


def test_recalibration_compares_each_signal_with_both_on_a_combined_task(tmp_path, tiny_model):
    """A `combined` task (local sampling, tiny model): the recalibration report holds the held-out comparison."""
    import pyarrow as pa

    from calscore.jobs.batches.files import discover
    from calscore.jobs.batches.stage import get_scorer, score_batch
    from calscore.jobs.calibrators.recalibrate import run_recalibration
    from calscore.jobs.labels.importing import import_labels
    from calscore.jobs.spec import load_spec
    from calscore.jobs.warehouse.runs import start_run
    from calscore.jobs.warehouse.writer import write_staged
    from flow_fixtures import task_toml, write_batch

    task = task_toml(tmp_path, tiny_model, min_labels=20)
    task.write_text(task.read_text().replace('backend = "transformers"', 'backend = "transformers_sampling"\n'
                                             'method = "combined"\nsamples = 4\nmax_tokens = 2'))
    spec = load_spec(task)
    _, truth = write_batch(tmp_path, "n1", 40)
    [ref] = discover(spec.input)
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")
    write_staged(spec, score_batch(spec, ref, run_id, get_scorer(spec), None), run_id)
    import_labels(spec, pa.table({"id": list(truth), "label": list(truth.values())}), "test")
    result = run_recalibration(spec)
    assert set(result["signals"]) == {"logprobs", "agreement", "combined"}
    assert all(r["n"] == 40 for r in result["signals"].values())
    assert "| combined | 40 |" in result["markdown"] and "| agreement | 40 |" in result["markdown"]


def test_promotion_compares_a_combined_challenger_on_both_signals():
    """Agreement carries the label: a combined challenger beats the raw scores on held-out labels."""
    from calscore.calibration_store import promotion
    from calscore.calibration_store.evidence import out_of_fold, stable_folds

    lp, agree, y = two_signals(400, 5, "agreement")
    times = np.array(["2026-11-01T00:00:00"] * 400, dtype="datetime64[us]")
    fold = stable_folds("t", [f"r{i}" for i in range(400)], 5)
    evidence = out_of_fold(["combined"], LABELS, lp, y, None, fold, 5, agreement=agree)
    decision = promotion.decide(lp, y, times, labels=LABELS, task_version="tv", method="combined", agreement=agree,
                                evidence=evidence)
    assert decision.promote and decision.challenger.method == "combined" and decision.evaluation == "out-of-fold"
    assert decision.n_train == 400  # the stored challenger: fitted on every label
    with pytest.raises(ValueError, match="these rows have none"):
        promotion.decide(lp, y, times, labels=LABELS, task_version="tv", method="combined", evidence=evidence)


def test_a_combined_champion_decides_nights_from_both_signals(tmp_path, tiny_model):
    """A `combined` task whose champion is a combined calibrator: the nightly decision and its re-application
    read each row's stored agreement beside its log-probabilities."""
    import duckdb

    from calscore.calibration_store.combined import stored_agreement
    from calscore.calibration_store.apply import logprob_matrix
    from calscore.jobs.batches.files import discover
    from calscore.jobs.batches.stage import get_scorer, score_batch
    from calscore.jobs.calibrators.admin import manual_promote
    from calscore.jobs.calibrators.champion import (applied_from_document, champion_document, explain_calibrated,
                                                   load_champion)
    from calscore.jobs.calibrators.reapply import continue_reapplications, queue_reapplication
    from calscore.jobs.calibrators.recalibrate import run_recalibration
    from calscore.jobs.labels.importing import import_labels
    from calscore.jobs.spec import load_spec
    from calscore.jobs.warehouse.connection import writer
    from calscore.jobs.warehouse.runs import finish_run, start_run
    from calscore.jobs.warehouse.writer import write_staged
    from calscore.calibration_store.document import canonical_json
    from flow_fixtures import task_toml, write_batch

    task = task_toml(tmp_path, tiny_model, min_labels=20, method="combined")
    task.write_text(task.read_text().replace('backend = "transformers"', 'backend = "transformers_sampling"\n'
                                             'method = "combined"\nsamples = 4\nmax_tokens = 2'))
    spec = load_spec(task)

    def score_night(name: str, n: int, start: int) -> dict[str, str]:
        _, truth = write_batch(tmp_path, name, n, start=start)
        done = {r.key for r in discover(spec.input)} - {name + ".parquet"}
        [ref] = [r for r in discover(spec.input) if r.key not in done]
        run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")
        document = champion_document(spec)
        applied = applied_from_document(canonical_json(document) if document else None, spec.task_version)
        write_staged(spec, score_batch(spec, ref, run_id, get_scorer(spec), applied), run_id)
        finish_run(spec.warehouse.path, run_id, "completed", {})
        return truth

    truth = score_night("n1", 120, 0)
    import_labels(spec, pa.table({"id": list(truth), "label": list(truth.values())}), "test")
    result = run_recalibration(spec)
    assert result["version"] is not None and result["method"] == "combined"  # fitted and compared on both signals
    if not result["promoted"]:  # setup: the champion under test is this combined calibrator either way
        manual_promote(spec, result["version"], "test", "the combined champion under test")
    cal, _ = load_champion(spec.warehouse.path, spec.task_version)
    assert cal.method == "combined"
    with writer(spec.warehouse.path) as con:  # re-applied to night 1 (a promotion by the recalibration already did)
        con.execute("BEGIN TRANSACTION")
        assert queue_reapplication(con, spec, result["version"], "run-reapply")
        con.execute("COMMIT")
    continue_reapplications(spec)
    score_night("n2", 40, 120)

    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        rows = con.sql("SELECT p.label_logprobs, p.agreement, p.samples, p.coverage, d.calibrated_probs, d.confidence,"
                       " d.bucket_basis, d.decided_by FROM predictions p JOIN current_decisions d USING (task_version, row_id)"
                       " ORDER BY row_id").to_arrow_table()
    assert rows.num_rows == 160 and set(rows["bucket_basis"].to_pylist()) == {"calibrated"}
    assert rows["decided_by"].to_pylist().count("reapplied") == 120
    lp = logprob_matrix(rows["label_logprobs"], spec.label_names)
    agree = stored_agreement(rows["agreement"], rows["samples"], spec.label_names, spec.model.smoothing)
    expected = cal.predict_proba(stack_signals(lp, agree))
    got = logprob_matrix(rows["calibrated_probs"], spec.label_names, "calibrated_probs")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.max(axis=1), rows["confidence"].to_numpy(), rtol=0, atol=1e-12)
    assert set(rows["samples"].to_pylist()) == {4}  # every row carries its N sampled answers
    # `calscore explain` decides one row the same way
    explained = explain_calibrated(spec, list(lp[-1]), rows["coverage"][-1].as_py(), list(agree[-1]))
    assert explained["confidence"] == pytest.approx(rows["confidence"][-1].as_py(), abs=1e-12)


def test_a_combined_calibrator_needs_a_scorer_that_samples(tmp_path, tiny_model):
    from calscore.jobs.spec import SpecError, load_spec
    from flow_fixtures import task_toml

    task = task_toml(tmp_path, tiny_model, method="combined")  # first-token scoring only
    with pytest.raises(SpecError, match=r'needs \[model\] method = "combined"'):
        load_spec(task)
