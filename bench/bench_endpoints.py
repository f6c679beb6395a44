"""Benchmark remote scoring: the local engine against a llama.cpp server and consistency sampling.

    CALSCORE_CACHE=.cache/calscore HF_HUB_OFFLINE=1 \\
        .venv/bin/python bench/bench_endpoints.py [../shared/data/sst2/glue_sst2_dev.tsv] [--rows 256]

One run, the same SST-2 rows and the demo task's few-shot prompt everywhere, 2 threads:

  engine        the local first-token engine (float32, dequantized weights), before and after the rest
  server cN     `openai_compatible`, method logprobs, against llama-cpp-python's server on the same
                GGUF file, N concurrent requests (1, 2), without and with its prompt cache
  consistency   method consistency with N = 5 and 10 samples (pure temperature-1 sampling,
                2 tokens), against the server without its prompt cache

Every endpoint run starts with an empty response cache (it measures requests, not the
cache). Prints rows/s, requests/s, tokens the server counted, and agreement with the
engine: predicted labels equal, log-odds correlation, AUROC against the gold labels.
The target: the engine at least 2x the server's rows/s at equal agreement.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's llama.cpp server launcher

DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "sst2" / "glue_sst2_dev.tsv"
PURE_SAMPLING = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}


def read_sst2(path: Path, rows: int) -> tuple[list[str], np.ndarray]:
    with path.open(encoding="utf-8", newline="") as f:
        data = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:rows]
    return [r["sentence"] for r in data], np.array([int(r["label"]) for r in data])


def timed(scorer, texts) -> tuple[np.ndarray, float, dict]:
    started = time.perf_counter()
    table = scorer.score(texts)
    seconds = time.perf_counter() - started
    lp = np.array(table["label_logprobs"].to_pylist())
    usage = scorer.usage() if hasattr(scorer, "usage") else {}
    return lp[:, 0] - lp[:, 1], seconds, usage


def report(name: str, log_odds, seconds: float, usage: dict, engine, truth, n: int) -> dict:
    from sklearn.metrics import roc_auc_score

    row = {"run": name, "rows/s": n / seconds, "requests/s": usage.get("requests", 0) / seconds,
           "tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
           "labels equal": float(np.mean((log_odds > 0) == (engine > 0))),
           "log-odds r": float(np.corrcoef(log_odds, engine)[0, 1]),
           "AUROC": float(roc_auc_score(truth == 1, log_odds))}
    print(f"{name:<22} {row['rows/s']:7.2f} {row['requests/s']:10.2f} {row['tokens']:8d} "
          f"{row['labels equal']:7.1%} {row['log-odds r']:7.3f} {row['AUROC']:6.3f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=256)
    args = parser.parse_args()

    from endpoint_fixtures import ALIAS, LlamaServer

    from calscore.jobs.scoring.backends.openai_compatible import OpenAICompatibleConfig
    from calscore.jobs.scoring.registry import make_scorer
    from calscore.jobs.spec import load_spec

    texts, truth = read_sst2(args.data, args.rows)
    demo = load_spec(ROOT / "infra" / "tasks" / "demo.toml")
    engine = make_scorer(demo.model, demo.prompt, demo.labels)
    engine.score(texts[:16])  # warm-up
    print(f"{len(texts)} SST-2 rows, demo prompt, 2 threads")
    print(f"{'run':<22} {'rows/s':>7} {'requests/s':>10} {'tokens':>8} {'equal':>7} {'r':>7} {'AUROC':>6}")
    reference, seconds, _ = timed(engine, texts)
    results = [report("engine", reference, seconds, {}, reference, truth, len(texts))]
    work = Path(tempfile.mkdtemp(prefix="bench-endpoints-"))

    def remote(server, name: str, **fields) -> None:
        cfg = OpenAICompatibleConfig(backend="openai_compatible", base_url=server.base_url, model=ALIAS, **fields)
        scorer = make_scorer(cfg, demo.prompt, demo.labels, cache_path=work / f"{name}.sqlite")
        results.append(report(name, *timed(scorer, texts), reference, truth, len(texts)))

    for prompt_cache in (False, True):
        server = LlamaServer(work, prompt_cache=prompt_cache).start()
        try:
            tag = "cache" if prompt_cache else "no cache"
            for concurrency in (1, 2):
                remote(server, f"server c{concurrency} {tag}", max_concurrency=concurrency)
            if not prompt_cache:  # llama-cpp-python's prompt cache copies the model state per request: slower here
                for n in (5, 10):
                    remote(server, f"consistency N={n}", method="consistency", samples=n, max_tokens=2,
                           max_concurrency=2, extra_body=PURE_SAMPLING, timeout_seconds=300)
        finally:
            server.stop()
    again, seconds, _ = timed(engine, texts)
    results.append(report("engine (again)", again, seconds, {}, reference, truth, len(texts)))
    engine_rate = min(r["rows/s"] for r in results if r["run"].startswith("engine"))
    server_rate = max(r["rows/s"] for r in results if r["run"].startswith("server"))
    print(f"\nengine / fastest server: {engine_rate / server_rate:.1f}x (target >= 2x)")


if __name__ == "__main__":
    main()
