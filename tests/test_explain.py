"""`explain`: the tables of one row's score, as a function and as the CLI command."""
from __future__ import annotations

import math
import re

import pytest
from typer.testing import CliRunner

from calscore.cli import app
from calscore.jobs.scoring.engine.first_token import FirstTokenScorer
from calscore.jobs.scoring.explain import render_explanation
from calscore.jobs.scoring.model_loading import load_model
from calscore.jobs.spec import load_spec
from tiny_models import build_tiny_model, tiny_spec, write_tiny_task


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_explain") / "llama", arch="llama", seed=3)


@pytest.fixture(scope="module")
def scorer(folder):
    spec = tiny_spec(folder, labels={"yes": ["Yes", "yes", "YES", "Yesss"], "no": ["No", "no"]})
    return FirstTokenScorer(load_model(spec.model), spec.prompt, spec.labels, top_k=8)


def test_explanation_numbers_agree_with_the_scorer(scorer):
    text = "a warm, funny film"
    result = scorer.explain(text, top_k=8)
    row = scorer.score([text]).to_pylist()[0]
    assert tuple(lbl.label for lbl in result.labels) == scorer.labels
    assert [lbl.logprob for lbl in result.labels] == pytest.approx(row["label_logprobs"], abs=1e-6)
    assert result.prediction == row["raw_label"]
    assert result.raw_confidence == pytest.approx(row["raw_confidence"], abs=1e-6)
    assert result.coverage == pytest.approx(row["coverage"], abs=1e-6)
    assert [t.token_id for t in result.top_tokens] == [t["token_id"] for t in row["top_tokens"]]
    for label in result.labels:  # the label total is the sum of its counted variants' probabilities
        counted = {v.token_id: v.probability for v in label.variants if v.status in ("ok", "partial")}
        assert label.probability == pytest.approx(sum(counted.values()), rel=1e-5)


def test_rendered_tables(scorer):
    result = scorer.explain("the jokes fall flat", top_k=5)
    text = render_explanation(result)
    assert "Top first tokens" in text and "Label aggregation" in text
    assert len(re.findall(r"^\s+[1-5]  ", text, flags=re.M)) == 5  # five ranked rows
    top = result.top_tokens[0]
    assert f"{top.logprob:.4f}" in text and f"{math.exp(top.logprob):.4f}" in text
    assert "'Yesss'" in text and "not counted" in text  # a multi-token variant is shown, not summed
    assert f"prediction:      {result.prediction}" in text
    assert f"raw confidence:  {result.raw_confidence:.4f}" in text
    assert f"coverage:        {result.coverage:.4f}" in text
    assert "(no calibrator applied)" in text
    calibrated = render_explanation(result, calibrated={"confidence": 0.8312, "bucket": "review", "calibrator": "platt-1a2b"})
    assert "calibrated:      0.8312" in calibrated
    assert "bucket:          review" in calibrated and "platt-1a2b" in calibrated
    assert "no calibrator" not in calibrated


def test_cli_explain(folder, tmp_path):
    task = write_tiny_task(tmp_path / "task.toml", folder)
    result = CliRunner().invoke(app, ["explain", "--task", str(task), "--top-k", "4", "a warm, funny film"])
    assert result.exit_code == 0, result.output
    assert "Top first tokens" in result.output and "prediction:" in result.output
    assert "'a warm, funny film'" in result.output
    # no champion yet: the bucket the nightly run would give, on the raw confidence
    raw_confidence = float(re.search(r"raw confidence:\s+([0-9.]+)", result.output).group(1))
    coverage = float(re.search(r"coverage:\s+([0-9.]+)", result.output).group(1))
    spec = load_spec(task)
    expected = spec.buckets[-1].name if coverage < spec.coverage_floor else next(
        b.name for b in spec.buckets if raw_confidence >= b.min)
    assert re.search(rf"bucket:\s+{expected}\b.*on the raw confidence", result.output), result.output


def test_cli_explain_reports_a_bad_verbalizer(folder, tmp_path):
    task = write_tiny_task(tmp_path / "task.toml", folder, labels={"a": ["Sportsx"], "b": ["Sportsy"]})
    result = CliRunner().invoke(app, ["explain", "--task", str(task), "text"])
    assert result.exit_code == 2  # a task-file error, as `calscore score` reports it (test_operations_edges.py)
    assert "first-token scoring cannot tell them apart" in result.output


def test_cli_help_has_an_example():
    for command in ("explain", "score-file"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example: calscore " + command in result.output
