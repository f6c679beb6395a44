"""The `openai_compatible` backend against a real llama.cpp server (llama-cpp-python, demo GGUF) on 127.0.0.1:
label probabilities against the local engine, the task version, retries through a fault-injecting proxy,
row errors, an endpoint that is down, and a server killed mid-batch."""
from __future__ import annotations

import csv
import threading
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from calscore.jobs.scoring.backends.openai_compatible import OPENAI_COMPATIBLE, OpenAICompatibleConfig
from calscore.jobs.scoring.endpoint_client import EndpointUnavailable
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.explain import render_explanation
from calscore.jobs.scoring.registry import make_scorer
from calscore.jobs.scoring.response_cache import ResponseCache
from calscore.jobs.spec import load_spec
from endpoint_fixtures import ALIAS, REPO, FaultProxy, LlamaServer, endpoint_task, score_and_write
from flow_fixtures import write_batch

pytestmark = [pytest.mark.demo_model, pytest.mark.minutes(1.1)]
ROWS = 64


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LlamaServer(tmp_path_factory.mktemp("llama")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def demo():
    return load_spec(REPO / "infra" / "tasks" / "demo.toml")


def config(base_url: str, **overrides) -> OpenAICompatibleConfig:
    return OpenAICompatibleConfig(backend="openai_compatible", base_url=base_url, model=ALIAS, **overrides)


def sst2(shared_data, n: int) -> tuple[list[str], np.ndarray]:
    with open(shared_data / "sst2" / "glue_sst2_dev.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:n]
    return [r["sentence"] for r in rows], np.array([int(r["label"]) for r in rows])


def log_odds(table) -> np.ndarray:
    lp = np.array(table["label_logprobs"].to_pylist())
    return lp[:, 0] - lp[:, 1]  # positive vs negative


def test_label_probabilities_through_the_server_match_the_local_engine(server, demo, demo_model_dir, shared_data, tmp_path):
    texts, truth = sst2(shared_data, ROWS)
    remote = make_scorer(config(server.base_url), demo.prompt, demo.labels, cache_path=tmp_path / "c.sqlite")
    local = make_scorer(demo.model, demo.prompt, demo.labels)
    got, want = remote.score(texts), local.score(texts)
    a, b = log_odds(got), log_odds(want)
    # Tolerance: the server runs llama.cpp's quantized kernels on the Q4_1 GGUF weights, the engine
    # float32 on the dequantized weights (by hand on 256 rows: 97.7% labels equal, r = 0.996,
    # largest log-odds gap 0.28, AUROC 0.904 vs 0.905).
    assert np.mean((a > 0) == (b > 0)) >= 0.95
    assert np.corrcoef(a, b)[0, 1] >= 0.99
    assert np.abs(a - b).max() <= 0.5
    assert abs(roc_auc_score(truth, a) - roc_auc_score(truth, b)) <= 0.02
    assert got["error"].null_count == ROWS and got["n_tokens"].null_count == 0
    assert np.isfinite(a).all() and len(set(np.round(a, 6))) > ROWS // 2  # not the constant-logits trap
    assert remote.usage()["prompt_tokens"] == sum(got["n_tokens"].to_pylist())


def test_a_short_top_list_imputes_the_missing_label_and_says_so(server, demo, tmp_path):
    scorer = make_scorer(config(server.base_url, top_logprobs=1), demo.prompt, demo.labels,
                         cache_path=tmp_path / "c.sqlite")
    rows = scorer.score(["a warm, funny film", "the jokes fall flat", "the train leaves at nine"]).to_pylist()
    for row in rows:
        # with one listed token, at most one label is observed; the other is imputed, coverage a lower bound
        assert len(row["unobserved_labels"]) >= 1 and row["coverage_is_lower_bound"]
        assert np.isfinite(row["label_logprobs"]).all()
    shown = render_explanation(scorer.explain("the train leaves at nine", top_k=1))
    assert "imputed" in shown and "not reported" in shown and "a lower bound" in shown


def test_task_version_is_the_served_identity_and_a_swapped_model_fails_the_batch(server, demo, tmp_path):
    parts = OPENAI_COMPATIBLE.version_parts(config(server.base_url))
    assert parts["served"] == {"listed": {"id": ALIAS, "object": "model", "owned_by": "me"}, "answers_as": ALIAS}
    runtime = OPENAI_COMPATIBLE.version_parts(config(server.base_url, max_concurrency=1, timeout_seconds=5))
    assert runtime == parts  # runtime knobs are not part of task_version
    assert OPENAI_COMPATIBLE.version_parts(config(server.base_url, top_logprobs=5)) != parts
    with FaultProxy(server.base_url) as proxy:
        scorer = make_scorer(config(proxy.base_url), demo.prompt, demo.labels, cache_path=tmp_path / "c.sqlite")
        proxy.rename_model = "another-model"
        with pytest.raises(ScorerError, match="now answers as model 'another-model'"):
            scorer.score(["a warm film"])


def test_429_and_5xx_are_retried_honouring_retry_after_and_4xx_is_a_row_error(server, demo, tmp_path):
    texts = ["a warm film", "a dull film", "a film"]
    direct = make_scorer(config(server.base_url, response_cache=False), demo.prompt, demo.labels).score(texts)
    with FaultProxy(server.base_url) as proxy:
        scorer = make_scorer(config(proxy.base_url, max_concurrency=1, response_cache=False), demo.prompt,
                             demo.labels)
        proxy.inject(429, retry_after="1")
        proxy.inject(500)
        proxy.inject(503)
        started = time.monotonic()
        out = scorer.score(texts)
        assert time.monotonic() - started >= 1.0  # Retry-After was honoured
        assert proxy.injected == [429, 500, 503] and scorer.usage()["retries"] == 3
        assert out["error"].null_count == 3
        assert np.allclose(log_odds(out), log_odds(direct))
        proxy.inject(422)
        rejected = scorer.score(texts)
        assert scorer.usage()["retries"] == 3  # a 4xx is never retried
        assert rejected["error"].to_pylist()[0].startswith("rejected: HTTP 422")
        assert rejected["error"].to_pylist()[1:] == [None, None]
        assert rejected["label_logprobs"].to_pylist()[0] is None


def test_an_endpoint_that_stays_down_fails_the_batch_with_the_reason(demo, server, tmp_path):
    with FaultProxy(server.base_url) as proxy:
        scorer = make_scorer(config(proxy.base_url, max_attempts=3, retry_budget_seconds=5), demo.prompt,
                             demo.labels, cache_path=tmp_path / "c.sqlite")
    # the proxy is gone: nothing listens on its port any more
    with pytest.raises(EndpointUnavailable, match="cannot be reached .*after 3 attempts"):
        scorer.score(["a warm film"])


def test_a_rejected_row_is_quarantined_as_endpoint_error_and_the_rest_written(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CALSCORE_CACHE", str(tmp_path / "cache"))
    with FaultProxy(server.base_url) as proxy:
        spec = load_spec(endpoint_task(tmp_path, proxy.base_url, max_concurrency=1))
        write_batch(tmp_path, "night1", 6)
        assert spec.task_version  # resolves the served identity (its probe) before the fault
        proxy.inject(400)
        assert score_and_write(spec) == {"rows_scored": 5, "rows_quarantined": 1, "skipped": False}
    con = duckdb.connect(str(spec.warehouse.path), read_only=True)
    assert con.sql("SELECT reason, detail LIKE 'rejected: HTTP 400%' FROM quarantine").fetchall() == [
        ("endpoint_error", True)]
    assert con.sql("SELECT count(*), count(agreement), count(samples) FROM predictions").fetchall() == [(5, 0, 0)]


def test_a_server_killed_mid_batch_then_restarted_the_rerun_writes_every_row_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CALSCORE_CACHE", str(tmp_path / "cache"))
    srv = LlamaServer(tmp_path).start()
    try:
        spec = load_spec(endpoint_task(tmp_path, srv.base_url, max_concurrency=1, max_attempts=3,
                                       retry_budget_seconds=10))
        pq.write_table(pa.table({"id": [f"r{i}" for i in range(24)],  # 24 different prompts
                                 "text": [f"review {i}: a {'warm' if i % 2 else 'dull'} film" for i in range(24)]}),
                       tmp_path / "batches" / "night1.parquet")
        cache = ResponseCache(tmp_path / "cache" / "endpoint-responses.sqlite")

        def kill_when_some_are_cached():
            deadline = time.monotonic() + 300
            while len(cache) < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            srv.kill()

        killer = threading.Thread(target=kill_when_some_are_cached)
        killer.start()
        with pytest.raises(EndpointUnavailable, match="already received are cached"):
            score_and_write(spec)
        killer.join()
        cached = len(cache)
        assert 8 <= cached < 24
        srv.start()
        assert score_and_write(spec) == {"rows_scored": 24, "rows_quarantined": 0, "skipped": False}
        assert srv.completions_served() == 24 - cached  # the restarted server's own count: cached rows not asked again
        assert score_and_write(spec)["skipped"]  # a third run writes nothing
        con = duckdb.connect(str(spec.warehouse.path), read_only=True)
        assert con.sql("SELECT count(*), count(DISTINCT row_id) FROM predictions").fetchall() == [(24, 24)]
    finally:
        srv.stop()


def test_a_batch_records_what_the_endpoint_cost(server, tmp_path, monkeypatch):
    """Requests and tokens paid while scoring a batch travel in its staged manifest to the run's summary."""
    from calscore.jobs.batches.files import discover
    from calscore.jobs.batches.stage import get_scorer, score_batch

    monkeypatch.setenv("CALSCORE_CACHE", str(tmp_path / "cache"))
    spec = load_spec(endpoint_task(tmp_path, server.base_url))
    write_batch(tmp_path, "night1", 4)
    [ref] = discover(spec.input)
    staged = score_batch(spec, ref, "run-1", get_scorer(spec), None)
    assert staged.usage["requests"] == 4 and staged.usage["prompt_tokens"] > 0
    again = score_batch(spec, ref, "run-2", get_scorer(spec), None, stage_root=str(tmp_path / "other-staging"))
    assert again.usage["requests"] == 0 and again.usage["cache_hits"] == 4  # a re-run pays nothing
