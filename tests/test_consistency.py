"""Consistency and combined: answers parsed to labels, the local engine's agreement converging to its
first-token probabilities, the endpoint's sampled agreement against the engine, and both signals stored."""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calscore.jobs.scoring.backends.consistency import AnswerParser, first_word
from calscore.jobs.scoring.backends.local_sampling import LocalSamplingConfig
from calscore.jobs.scoring.backends.openai_compatible import OpenAICompatibleConfig
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.registry import make_scorer
from calscore.jobs.spec import load_spec
from endpoint_fixtures import ALIAS, REPO, LlamaServer, score_and_write

TEXTS = ["a warm, funny and beautifully acted film", "the plot drags and the jokes fall flat",
         "it is a film about a man and his dog", "an uneven but often affecting story"]
LABELS = {"positive": ("positive", "Positive"), "negative": ("negative", "NEGATIVE")}


def test_an_answer_is_its_first_word_folded_and_anything_else_is_off_format():
    parser = AnswerParser(LABELS)
    answers = [" Positive.", "positive!", "NEGATIVE\n", "  negative, surely", "neutral", "", "...", "positively"]
    assert parser.counts(answers).tolist() == [2, 2]  # the last four are off-format
    assert first_word(" «Négatif» ") == "négatif"
    assert [parser.settled(a) for a in (" pos", " positive", " positive.", " The", " ...", "")] == [
        False, False, True, True, False, False]
    with pytest.raises(ScorerError, match="both start with the word 'yes'"):
        AnswerParser({"a": ("yes",), "b": ("Yes!",)})


@pytest.fixture(scope="module")
def demo():
    return load_spec(REPO / "infra" / "tasks" / "demo.toml")


@pytest.fixture(scope="module")
def engine_probs(demo, demo_model_dir) -> np.ndarray:
    return np.exp(np.array(make_scorer(demo.model, demo.prompt, demo.labels).score(TEXTS)["label_logprobs"].to_pylist()))


def local(samples: int, method: str = "consistency") -> LocalSamplingConfig:
    return LocalSamplingConfig(backend="transformers_sampling", embedded="smollm2-135m-instruct", samples=samples,
                               max_tokens=2, method=method)


@pytest.mark.demo_model
def test_local_agreement_converges_to_the_first_token_probabilities(demo, engine_probs):
    errors = {}
    for n in (20, 2000):  # N costs little here: identical continuations are extended once
        out = make_scorer(local(n), demo.prompt, demo.labels).score(TEXTS)
        assert out["samples"].to_pylist() == [n] * len(TEXTS)
        errors[n] = np.abs(np.array(out["agreement"].to_pylist()) - engine_probs)
    assert errors[2000].mean() < errors[20].mean() / 3  # ~1/sqrt(N), seeded
    # what remains at N = 2000: sampling error (sd <= 0.011) and answers whose first word is
    # not the first token (" positive" + "ly"), both small for this prompt
    assert errors[2000].max() <= 0.05


@pytest.mark.demo_model
def test_combined_rows_carry_both_signals_into_the_warehouse(engine_probs, tmp_path):
    (tmp_path / "batches").mkdir()
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(TEXTS))], "text": TEXTS}),
                   tmp_path / "batches" / "n1.parquet")
    task = tmp_path / "task.toml"
    task.write_text((REPO / "infra" / "tasks" / "demo.toml").read_text().replace(
        'embedded = "smollm2-135m-instruct"',
        'backend = "transformers_sampling"\nembedded = "smollm2-135m-instruct"\nmethod = "combined"\n'
        'samples = 10\nmax_tokens = 2').replace("../../var/demo/batches", "batches").replace(
        "../../var/demo/calscore.duckdb", "w.duckdb").replace('segment_column = "category"', ""))
    spec = load_spec(task)
    assert score_and_write(spec)["rows_scored"] == len(TEXTS)
    con = duckdb.connect(str(spec.warehouse.path), read_only=True)
    stored = con.sql("SELECT samples, agreement['positive'], agreement['negative'], label_logprobs['positive'], "
                     "label_logprobs['negative'] FROM predictions ORDER BY row_id").fetchall()
    # the first-token signal as the engine computes it, and the sampled one beside it
    assert np.allclose(np.exp([row[3:] for row in stored]), engine_probs, atol=1e-5)
    agreement = np.array([row[1:3] for row in stored])
    assert [row[0] for row in stored] == [10] * len(TEXTS)
    assert np.allclose(agreement * 10, np.round(agreement * 10)) and (agreement.sum(axis=1) <= 1 + 1e-9).all()


@pytest.mark.demo_model
def test_endpoint_agreement_against_the_engine(demo, engine_probs, tmp_path):
    n = 25
    server = LlamaServer(tmp_path).start()
    try:
        # pure temperature sampling: llama.cpp's default top-k / top-p / min-p / repeat penalty off
        cfg = OpenAICompatibleConfig(backend="openai_compatible", base_url=server.base_url, model=ALIAS,
                                     method="consistency", samples=n, max_tokens=2, max_concurrency=2,
                                     extra_body={"top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0})
        scorer = make_scorer(cfg, demo.prompt, demo.labels, cache_path=tmp_path / "c.sqlite")
        out = scorer.score(TEXTS)
        again = make_scorer(cfg, demo.prompt, demo.labels, cache_path=tmp_path / "c.sqlite")
        assert again.score(TEXTS).equals(out)  # seeded requests: the re-run is answered from the cache
        assert again.usage()["requests"] == 0 and again.usage()["cache_hits"] == n * len(TEXTS)
    finally:
        server.stop()
    counts = np.array(out["agreement"].to_pylist()) * n
    assert out["samples"].to_pylist() == [n] * len(TEXTS)
    # the positive answers of all rows against the engine's first-token probabilities: a sum of
    # binomials, within 4 standard deviations (plus 0.03 per sample for quantized weights and
    # answers whose first word is not the first token)
    p = engine_probs[:, 0]
    sd = np.sqrt(n * (p * (1 - p)).sum())
    assert abs(counts[:, 0].sum() - n * p.sum()) <= 4 * sd + 0.03 * n * len(TEXTS)
