"""`score-file`: a Parquet file in, the same rows with score columns out, without Prefect."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from calscore.cli import app
from calscore.jobs.scoring.engine.first_token import PRECISION_BF16_MATMULS, PRECISION_FLOAT32, FirstTokenScorer
from calscore.jobs.scoring.engine.precision import bf16_matmul_takes_effect
from calscore.jobs.scoring.registry import make_scorer
from calscore.jobs.scoring.model_loading import load_model
from calscore.jobs.scoring.score_file import score_file
from tiny_models import build_tiny_model, tiny_spec, write_tiny_task


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_score_file") / "qwen2", arch="qwen2", seed=2)


def write_input(path, n=37, with_null=False):
    texts = [f"review {i}: " + "fun " * (i % 5) + "dull " * (i % 3) for i in range(n)]
    if with_null:
        texts[4] = None
    table = pa.table({
        "id": [f"r{i:03d}" for i in range(n)],
        "text": texts,
        "category": [["a", "b", "c"][i % 3] for i in range(n)],
    })
    pq.write_table(table, path, row_group_size=10)
    return table


def test_score_file_keeps_rows_columns_and_order(folder, tmp_path):
    spec = tiny_spec(folder)
    source = write_input(tmp_path / "in.parquet")
    summary = score_file(make_scorer(spec.model, spec.prompt, spec.labels), tmp_path / "in.parquet", tmp_path / "out.parquet", progress=False)
    out = pq.read_table(tmp_path / "out.parquet")
    assert summary["rows"] == 37 and summary["rows_per_s"] > 0 and summary["seconds"] > 0
    assert out.column("id").to_pylist() == source.column("id").to_pylist()
    assert out.column("category").to_pylist() == source.column("category").to_pylist()
    for name in ("label_logprobs", "coverage", "raw_label", "raw_confidence", "total_probability", "truncated", "n_tokens"):
        assert name in out.column_names
    direct = FirstTokenScorer(load_model(spec.model), spec.prompt, spec.labels).score(source.column("text").to_pylist())
    a = np.array(out.column("label_logprobs").to_pylist())
    b = np.array(direct.column("label_logprobs").to_pylist())
    assert np.abs(a - b).max() <= 1e-4
    named = np.array([out.column(f"logprob_{label}").to_pylist() for label in spec.labels]).T
    assert np.array_equal(named, a)  # each label's column is its entry of the list, by name
    assert not (tmp_path / "out.parquet.partial").exists()


def test_null_text_rows_get_null_scores(folder, tmp_path):
    spec = tiny_spec(folder)
    write_input(tmp_path / "in.parquet", n=9, with_null=True)
    summary = score_file(make_scorer(spec.model, spec.prompt, spec.labels), tmp_path / "in.parquet", tmp_path / "out.parquet", progress=False)
    out = pq.read_table(tmp_path / "out.parquet")
    assert summary["null_text_rows"] == 1 and out.num_rows == 9
    assert out.column("raw_label").to_pylist()[4] is None
    assert out.column("raw_label").null_count == 1
    assert all(out.column(f"logprob_{label}").to_pylist()[4] is None for label in spec.labels)


def test_an_input_column_named_like_a_label_score_is_refused(folder, tmp_path):
    spec = tiny_spec(folder)
    label = next(iter(spec.labels))
    pq.write_table(pa.table({"id": [1], "text": ["x"], f"logprob_{label}": [0.0]}), tmp_path / "in.parquet")
    with pytest.raises(KeyError, match=f"logprob_{label}"):
        score_file(make_scorer(spec.model, spec.prompt, spec.labels), tmp_path / "in.parquet", tmp_path / "out.parquet", progress=False)
    assert not (tmp_path / "out.parquet").exists()


def test_missing_text_column_is_a_clear_error(folder, tmp_path):
    spec = tiny_spec(folder)
    pq.write_table(pa.table({"id": [1], "body": ["x"]}), tmp_path / "in.parquet")
    with pytest.raises(KeyError, match="text_column"):
        score_file(make_scorer(spec.model, spec.prompt, spec.labels), tmp_path / "in.parquet", tmp_path / "out.parquet", progress=False)


def test_cli_score_file_with_bfloat16(folder, tmp_path):
    task = write_tiny_task(tmp_path / "task.toml", folder)
    write_input(tmp_path / "in.parquet", n=12)
    result = CliRunner().invoke(app, [
        "score-file", "--task", str(task), "--input", str(tmp_path / "in.parquet"),
        "--output", str(tmp_path / "out.parquet"), "--dtype", "bfloat16",
    ])
    assert result.exit_code == 0, result.output
    summary, _ = json.JSONDecoder().raw_decode(result.output[result.output.index("{\n  \"input\""):])  # logs surround it on stderr
    assert summary["rows"] == 12 and summary["dtype"] == "bfloat16"
    # the precision actually used: bfloat16 matmuls only where this CPU has them
    assert summary["precision"] == (PRECISION_BF16_MATMULS if bf16_matmul_takes_effect() else PRECISION_FLOAT32)
    assert "rows/s" in result.output  # the progress bar
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 12


def test_cli_score_file_missing_input(folder, tmp_path):
    task = write_tiny_task(tmp_path / "task.toml", folder)
    result = CliRunner().invoke(app, [
        "score-file", "--task", str(task), "--input", str(tmp_path / "nope.parquet"), "--output", str(tmp_path / "o.parquet"),
        "--no-progress",
    ])
    assert result.exit_code == 1 and "input file not found" in result.output
