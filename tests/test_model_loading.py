"""Loading a task's model: real folders with from_pretrained, dtype rules, clear errors."""
from __future__ import annotations

import shutil
import time

import pytest
import torch

from calscore.jobs.scoring.model_loading import LoadedModel, ModelLoadError, load_model, resolve_dtype
from calscore.jobs.scoring.model_ref import ModelRef
from tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_loading") / "qwen2", arch="qwen2")


def test_loads_a_local_folder_in_float32_on_cpu(folder):
    loaded = load_model(ModelRef(path=folder))
    assert isinstance(loaded, LoadedModel)
    assert loaded.device == "cpu" and loaded.dtype == "float32"
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert not loaded.model.training
    assert loaded.model.config._attn_implementation == "sdpa"
    assert loaded.tokenizer.is_fast
    assert loaded.reference == str(folder)


def test_bfloat16_is_opt_in_and_float16_never_on_cpu(folder):
    loaded = load_model(ModelRef(path=folder), dtype_override="bfloat16")
    # On CPU, bfloat16 is the matmul precision; weights stay float32 (see jobs.model_loading).
    assert loaded.dtype == "bfloat16" and next(loaded.model.parameters()).dtype == torch.float32
    assert load_model(ModelRef(path=folder, dtype="bfloat16")).dtype == "bfloat16"
    assert resolve_dtype("auto", "cuda:0") == "bfloat16"
    with pytest.raises(ModelLoadError, match="float16 on CPU"):
        load_model(ModelRef(path=folder), dtype_override="float16")


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model folder not found"):
        load_model(ModelRef(path=tmp_path / "nope"))


def test_folder_without_a_tokenizer(folder, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(folder / name, bare / name)
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_model(ModelRef(path=bare))


def test_folder_without_safetensors(folder, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    (other / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_model(ModelRef(path=other))


def test_hub_id_without_network_fails_fast_and_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    ref = ModelRef(hub_id="HuggingFaceTB/SmolLM2-360M-Instruct", revision="main")
    for offline in ("1", "0"):
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        if offline == "0":  # no network here: the reachability probe must fail quickly
            monkeypatch.setattr("calscore.jobs.scoring.model_loading._hub_reachable", lambda timeout=2.0: False)
        started = time.perf_counter()
        with pytest.raises(ModelLoadError) as err:
            load_model(ref)
        assert time.perf_counter() - started < 10
        message = str(err.value)
        assert "SmolLM2-360M-Instruct@main" in message
        assert "[model] path" in message
        assert ("HF_HUB_OFFLINE" in message) == (offline == "1")


def test_a_model_sharded_over_memory_and_disk_scores_like_the_whole_model(tmp_path, monkeypatch):
    """`[model] max_memory` shards with accelerate: on this CPU-only machine a tiny model gets 300 KB of
    memory, so some layers live on the CPU and the rest wait on disk; the scores are the whole model's."""
    import numpy as np

    from calscore.jobs.scoring.engine.first_token import FirstTokenScorer
    from tiny_models import build_tiny_model, tiny_spec

    monkeypatch.setenv("CALSCORE_CACHE", str(tmp_path / "cache"))
    folder = build_tiny_model(tmp_path / "llama", arch="llama", seed=2)
    spec = tiny_spec(folder)
    sharded_ref = ModelRef(path=folder, device="cpu", max_memory={"cpu": "300KB"})
    sharded = load_model(sharded_ref)
    assert {"cpu", "disk"} <= set(sharded.model.hf_device_map.values()), sharded.model.hf_device_map
    texts = ["a warm, funny film", "the jokes fall flat", "Yes", "sports business science " * 5]
    whole = FirstTokenScorer(load_model(ModelRef(path=folder, device="cpu")), spec.prompt, spec.labels).score(texts)
    parts = FirstTokenScorer(sharded, spec.prompt, spec.labels).score(texts)
    a = np.array(whole["label_logprobs"].to_pylist())
    b = np.array(parts["label_logprobs"].to_pylist())
    assert np.abs(a - b).max() <= 1e-5
