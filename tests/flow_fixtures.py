"""Helpers for flow tests: a task on a real DuckDB file and real Parquet batches, scored by a tiny
real model or by the `lookup` backend (label log-probabilities from a table: deterministic, no model)."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

WORDS_POS = ["warm", "funny", "charming", "affecting", "delight", "great", "lovely"]
WORDS_NEG = ["drags", "flat", "bleak", "desperate", "tedious", "mess", "dull"]


def task_toml(folder: Path, model: Path, *, coverage_floor: float = 0.0, min_labels: int = 20,
              refit_after: int = 40, name: str = "tiny", backend: str = "transformers", method: str = "platt",
              folds: int = 5) -> Path:
    """A task file scoring with the tiny model folder (or, backend="lookup", the table at `model`);
    batches in folder/batches, warehouse folder/w.duckdb."""
    (folder / "batches").mkdir(parents=True, exist_ok=True)
    path = folder / "task.toml"
    path.write_text(
        f"""
name = "{name}"
coverage_floor = {coverage_floor}

[model]
backend = "{backend}"
path = "{model}"

[prompt]
template = "Review: {{text}}\\nSentiment:"
max_input_tokens = 64

[labels]
positive = ["positive", "Positive"]
negative = ["negative", "Negative"]

[input]
location = "batches"
segment_column = "category"

[warehouse]
path = "w.duckdb"

[calibration]
method = "{method}"
folds = {folds}
min_labels = {min_labels}
refit_after_new_labels = {refit_after}
""",
        encoding="utf-8",
    )
    return path


def texts(n: int, start: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(ids, texts, truth labels) with positive/negative words so the truth is learnable."""
    ids, out, truth = [], [], []
    for i in range(start, start + n):
        positive = (i * 7) % 3 != 0
        words = WORDS_POS if positive else WORDS_NEG
        ids.append(f"r{i:05d}")
        out.append(f"It was {words[i % len(words)]} and {words[(i // 3) % len(words)]} {'!' * (i % 3)}")
        truth.append("positive" if positive else "negative")
    return ids, out, truth


def write_batch(folder: Path, name: str, n: int, start: int = 0, **extra_columns) -> tuple[Path, dict[str, str]]:
    """A Parquet batch of n rows (id, text, category + extra columns); returns its path and truth."""
    ids, body, truth = texts(n, start)
    table = pa.table({"id": ids, "text": body, "category": ["a" if i % 2 else "b" for i in range(n)], **extra_columns})
    path = folder / "batches" / f"{name}.parquet"
    pq.write_table(table, path)
    return path, dict(zip(ids, truth))


def write_lookup_scores(path: Path, texts_: list[str], truth: list[str], *, accuracy: float = 0.75,
                        unobserved_every: int = 0, seed: int = 0) -> Path:
    """A lookup table for these texts from an overconfident 'model': right about `accuracy` of the time,
    but 85-99% sure. Every `unobserved_every`-th row reports only its predicted label (the other is null)."""
    rng = random.Random(seed)
    columns: dict[str, list] = {"text": [], "positive": [], "negative": []}
    for i, (text, label) in enumerate(zip(texts_, truth)):
        if text in columns["text"]:  # a repeated text has one score
            continue
        columns["text"].append(text)
        right = rng.random() < accuracy
        predicted = label if right else ("negative" if label == "positive" else "positive")
        other = "negative" if predicted == "positive" else "positive"
        coverage = 0.9 + 0.09 * rng.random()
        share = 0.85 + 0.14 * rng.random()
        columns[predicted].append(math.log(coverage * share))
        hidden = unobserved_every and i % unobserved_every == 0
        columns[other].append(None if hidden else math.log(coverage * (1 - share)))
    pq.write_table(pa.table(columns), path)
    return path
