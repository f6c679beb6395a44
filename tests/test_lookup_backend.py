"""The `lookup` backend: a real second scorer (label log-probabilities from a table), through the
factory, the task spec, explain and the whole nightly / labels / recalibration loop."""
from __future__ import annotations

import math
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import log_loss
from typer.testing import CliRunner

from calscore.calibration_store.apply import logprob_matrix
from calscore.jobs.calibrators.champion import load_champion

from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.prompting import PromptSpec
from calscore.jobs.scoring.registry import make_scorer
from calscore.jobs.scoring.scorer import Scorer
from calscore.jobs.scoring.schema import SCORE_SCHEMA
from calscore.jobs.spec import SpecError, load_spec
from flow_fixtures import task_toml, texts, write_batch, write_lookup_scores

LABELS = {"positive": ("positive",), "negative": ("negative",)}
PROMPT = PromptSpec(template="Review: {text}\nSentiment:")


def lookup_config(path: Path):
    from calscore.jobs.scoring.backends.lookup import LookupConfig

    return LookupConfig(backend="lookup", path=path)


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"text": ["good", "bad", "half"],
                             "positive": [math.log(0.8), math.log(0.1), math.log(0.6)],
                             "negative": [math.log(0.1), math.log(0.7), None]}), path)
    return path


def test_scores_come_from_the_table_in_input_order(table):
    scorer = make_scorer(lookup_config(table), PROMPT, LABELS)
    assert isinstance(scorer, Scorer)
    out = scorer.score(["bad", "good", "bad"])
    assert out.schema == SCORE_SCHEMA
    assert out["raw_label"].to_pylist() == ["negative", "positive", "negative"]
    assert np.allclose(out["label_logprobs"].to_pylist()[1], [math.log(0.8), math.log(0.1)])
    assert np.allclose(out["coverage"].to_pylist(), [0.8, 0.9, 0.8])
    assert out["raw_confidence"].to_pylist()[1] == pytest.approx(0.8 / 0.9)
    assert out["unobserved_labels"].to_pylist() == [[], [], []]
    assert scorer.describe()["backend"] == "lookup"


def test_a_label_the_table_does_not_report_is_imputed_and_flagged(table):
    row = make_scorer(lookup_config(table), PROMPT, LABELS).score(["half"]).to_pylist()[0]
    assert row["unobserved_labels"] == ["negative"] and row["coverage_is_lower_bound"]
    assert row["coverage"] == pytest.approx(0.6)  # only what was observed
    # the missing label gets the unreported remainder (0.4), capped at the smallest reported mass (0.6)
    assert row["label_logprobs"] == pytest.approx([math.log(0.6), math.log(0.4)])


def test_texts_outside_the_table_and_bad_tables_are_clear_errors(table, tmp_path):
    scorer = make_scorer(lookup_config(table), PROMPT, LABELS)
    with pytest.raises(ScorerError, match="1 text\\(s\\) are not in the lookup table"):
        scorer.score(["good", "never seen"])
    pq.write_table(pa.table({"text": ["a"], "positive": [-0.1]}), tmp_path / "short.parquet")
    with pytest.raises(ScorerError, match=r"missing column\(s\) \['negative'\]"):
        make_scorer(lookup_config(tmp_path / "short.parquet"), PROMPT, LABELS)
    with pytest.raises(ScorerError, match="not found"):
        make_scorer(lookup_config(tmp_path / "nope.parquet"), PROMPT, LABELS)


def test_the_task_file_names_the_backend_and_task_version_follows_the_table(tmp_path, table):
    task = task_toml(tmp_path, table, backend="lookup")
    spec = load_spec(task)
    assert spec.model.backend == "lookup" and spec.model.path == table
    before = spec.task_version
    assert load_spec(task).task_version == before  # stable
    pq.write_table(pa.table({"text": ["good"], "positive": [-0.2], "negative": [-2.0]}), table)
    assert load_spec(task).task_version != before  # new scores, new task_version

    task.write_text(task.read_text().replace('backend = "lookup"', 'backend = "lookup"\ndtype = "float32"'))
    with pytest.raises(SpecError) as err:
        load_spec(task)
    assert "model.dtype: unknown field (a typo?); allowed here: backend, path" in str(err.value)
    task.write_text(task.read_text().replace('backend = "lookup"', 'backend = "magic"'))
    with pytest.raises(SpecError, match="model: .*'transformers', 'lookup'"):
        load_spec(task)


def test_explain_shows_what_the_backend_did_not_report(tmp_path, table):
    from calscore.cli import app

    task = task_toml(tmp_path, table, backend="lookup")
    result = CliRunner().invoke(app, ["explain", "--task", str(task), "half"])
    assert result.exit_code == 0, result.output
    assert "imputed: no token of it was reported" in result.output
    assert "a lower bound" in result.output and "prompt tokens: not reported" in result.output
    refused = CliRunner().invoke(app, ["explain", "--task", str(task), "--dtype", "bfloat16", "half"])
    assert refused.exit_code == 2 and "--dtype does not apply to the lookup backend" in refused.output


def q(task_dir, sql):
    with duckdb.connect(str(task_dir / "w.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.usefixtures("prefect_harness")
def test_two_nights_labels_and_a_recalibration_on_the_lookup_backend(tmp_path):
    """An overconfident scorer (85-99% sure, right 75% of the time): recalibration must promote,
    and the second night is decided by the calibrated confidence."""
    import json

    from calscore.flows.labels import ingest_labels
    from calscore.flows.nightly import nightly_scoring

    ids, body, truth = texts(400)
    table = write_lookup_scores(tmp_path / "scores.parquet", body, truth, unobserved_every=10)
    task = task_toml(tmp_path, table, backend="lookup", min_labels=100, refit_after=100)
    _, truth1 = write_batch(tmp_path, "night-001", 300)
    night1 = nightly_scoring(str(task), night=date(2026, 3, 1))
    assert night1["rows_scored"] == 300 and night1["calibrator"] is None
    assert q(tmp_path, "SELECT count(*), count(confidence), min(bucket_basis) FROM predictions") == [(300, 0, "raw")]
    partial = q(tmp_path, "SELECT count(*) FILTER (coverage_is_lower_bound), count(*) FILTER (len(unobserved_labels) = 1)"
                          " FROM predictions")
    assert partial[0][0] == partial[0][1] > 0  # rows whose other label was not reported are flagged

    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"id": list(truth1), "label": list(truth1.values())}), labels)
    result = ingest_labels(str(task), file=str(labels))
    assert result["inserted"] == 300
    assert q(tmp_path, "SELECT event FROM calibrator_events ORDER BY event_at") == [("fitted",), ("promoted",)]
    [(metrics,)] = q(tmp_path, "SELECT metrics FROM calibrator_events WHERE event = 'promoted'")
    metrics = json.loads(metrics)
    # out-of-fold ECE of the challenger's recipe: the overconfidence is corrected; the stored champion is fitted on
    # all 300 labels (convenience labels: no certification slice), and each of them is still judged, out-of-fold
    assert metrics["challenger"]["ece"] < metrics["baseline_metrics"]["ece"] and metrics["n_train"] == 300
    assert q(tmp_path, "SELECT count(*) FROM reliability_snapshots WHERE segment = 'all'") == [(2,)]
    assert q(tmp_path, "SELECT count(*) FILTER (used_in_fit), count(*) FILTER (evidence_basis = 'out_of_fold')"
                       " FROM predictions_current") == [(300, 300)]

    write_batch(tmp_path, "night-002", 100, start=300)
    night2 = nightly_scoring(str(task), night=date(2026, 3, 2))
    [(version,)] = q(tmp_path, "SELECT version FROM calibrators WHERE status = 'champion'")
    assert night2["rows_scored"] == 100 and night2["calibrator"] == version
    rows = q(tmp_path, "SELECT count(*), count(confidence), min(bucket_basis), min(calibrator_version), max(confidence)"
                       " FROM predictions WHERE batch_uri LIKE '%night-002%'")
    assert rows[0][:4] == (100, 100, "calibrated", version)
    assert rows[0][4] < 0.9  # calibrated confidence no longer claims 85-99%

    # runs minutes apart are the nights they were run for
    assert q(tmp_path, "SELECT night, count(*) FROM current_decisions GROUP BY night ORDER BY night") == [
        (date(2026, 3, 1), 300), (date(2026, 3, 2), 100)]
    before = datetime.now(timezone.utc).date()
    night3 = nightly_scoring(str(task))  # by hand, no night given: the date it was scheduled for (now)
    assert q(tmp_path, f"SELECT night FROM runs WHERE run_id = '{night3['run_id']}'")[0][0] in (
        before, datetime.now(timezone.utc).date())

    # every label's calibrated probability is stored: at scoring (night 2) and when the champion was
    # re-applied to night 1's rows; they are the champion's own probabilities on the stored raw scores
    spec = load_spec(task)
    champion_cal, _ = load_champion(spec.warehouse.path, spec.task_version)
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        stored = con.sql("SELECT label_logprobs, calibrated_probs, confidence, decided_by, true_label, is_labeled,"
                         " used_in_fit FROM predictions_current ORDER BY row_id").to_arrow_table()
    assert set(stored["decided_by"].to_pylist()) == {"scoring", "reapplied"}
    expected = champion_cal.predict_proba(logprob_matrix(stored["label_logprobs"], spec.label_names))
    probs = logprob_matrix(stored["calibrated_probs"], spec.label_names, "calibrated_probs")
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(probs.max(axis=1), stored["confidence"].to_numpy(), rtol=0, atol=1e-12)
    # ...so an analyst's multiclass NLL from the view equals scikit-learn's on the same rows
    labeled = stored.filter(pc.is_valid(stored["true_label"]))
    y = [spec.label_names.index(t) for t in labeled["true_label"].to_pylist()]
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        [(nll,)] = con.execute("SELECT avg(-ln(calibrated_probs[true_label])) FROM predictions_current"
                               " WHERE true_label IS NOT NULL").fetchall()
    reference = log_loss(y, logprob_matrix(labeled["calibrated_probs"], spec.label_names), labels=[0, 1])
    assert nll == pytest.approx(reference, rel=1e-12)


def test_calibration_folds_from_the_task_file_reach_auto(tmp_path):
    """`[calibration] folds` are the evidence base's folds, which `auto` chooses on (jobs only, no Prefect)."""
    import json

    from calscore.jobs.batches.files import discover
    from calscore.jobs.batches.stage import get_scorer, score_batch
    from calscore.jobs.calibrators.recalibrate import recalibrate
    from calscore.jobs.labels.importing import import_labels
    from calscore.jobs.warehouse.runs import start_run
    from calscore.jobs.warehouse.writer import write_staged

    _, body, truth = texts(300)
    table = write_lookup_scores(tmp_path / "scores.parquet", body, truth)
    spec = load_spec(task_toml(tmp_path, table, backend="lookup", method="auto", folds=3, min_labels=100))
    _, truth1 = write_batch(tmp_path, "night-001", 300)
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")
    [ref] = discover(spec.input)
    write_staged(spec, score_batch(spec, ref, run_id, get_scorer(spec), None), run_id)
    import_labels(spec, pa.table({"id": list(truth1), "label": list(truth1.values())}), "test")
    result = recalibrate(spec, start_run(spec.warehouse.path, spec.name, spec.task_version, "recalibrate"))
    [(document,)] = q(tmp_path, f"SELECT document FROM calibrators WHERE version = '{result['version']}'")
    doc = json.loads(document)
    assert doc["method"] == "auto" and doc["params"]["folds"] == 3
    assert doc["params"]["reason"].startswith("lowest 3-fold out-of-fold NLL")
