"""The prepared SmolLM2 demo model: a standard Hugging Face folder that answers the demo prompt sensibly."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from calscore.jobs.spec import load_spec

pytestmark = pytest.mark.demo_model

REPO = Path(__file__).resolve().parents[1]
POSITIVE = "An absolute triumph: the film was breathtaking and I loved every minute of it."
NEGATIVE = "The film was appalling. I regret every minute I spent on it."


@pytest.fixture(scope="module")
def loaded(demo_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir, trust_remote_code=False, use_safetensors=True)
    model.eval()
    torch.manual_seed(0)
    return model, tokenizer


def _first_token_probs(model, tokenizer, prompt: str):
    import torch

    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits[0, -1].double()
    return torch.softmax(logits, dim=-1)


def test_folder_is_a_standard_checkpoint(demo_model_dir: Path) -> None:
    names = {p.name for p in demo_model_dir.iterdir()}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert any(n.endswith(".safetensors") for n in names)
    assert not any(n.endswith((".gguf", ".bin", ".pt", ".pkl")) for n in names)


def test_has_a_chat_template(loaded) -> None:
    _, tokenizer = loaded
    assert tokenizer.chat_template
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is this review positive?"}], tokenize=False, add_generation_prompt=True
    )
    assert "Is this review positive?" in text
    assert text.rstrip() != "Is this review positive?"  # the template added role markers


def test_first_token_distribution_follows_the_review(loaded) -> None:
    import torch

    model, tokenizer = loaded
    template = load_spec(REPO / "infra" / "tasks" / "demo.toml").prompt.template
    positive_id = tokenizer.encode(" positive", add_special_tokens=False)
    negative_id = tokenizer.encode(" negative", add_special_tokens=False)
    assert len(positive_id) == 1 and len(negative_id) == 1, "the answers should be single tokens after 'Sentiment:'"

    after_pos = _first_token_probs(model, tokenizer, template.replace("{text}", POSITIVE))
    after_neg = _first_token_probs(model, tokenizer, template.replace("{text}", NEGATIVE))
    for probs in (after_pos, after_neg):
        assert torch.isfinite(probs).all()
        assert probs.min() >= 0
        assert abs(probs.sum().item() - 1.0) < 1e-6
        assert probs.shape[0] >= len(tokenizer) - 1  # full vocabulary (the embedding may be padded)
        # the few-shot prompt keeps the model in format: most mass on the two answers
        assert (probs[positive_id[0]] + probs[negative_id[0]]).item() > 0.5

    assert after_pos[positive_id[0]] > after_neg[positive_id[0]]
    assert after_pos[positive_id[0]] > after_pos[negative_id[0]]
    assert after_neg[negative_id[0]] > after_neg[positive_id[0]]


def test_prepare_is_idempotent(demo_model_dir: Path) -> None:
    from calscore.jobs.scoring.embedded_model import ensure_demo_model

    before = {p.name: p.stat().st_mtime_ns for p in demo_model_dir.iterdir()}
    started = time.monotonic()
    again = ensure_demo_model()
    assert again == demo_model_dir
    assert time.monotonic() - started < 5, "a prepared model must not be prepared again"
    assert {p.name: p.stat().st_mtime_ns for p in again.iterdir()} == before
    assert not list(again.parent.glob(".preparing-*")), "a temporary build folder was left behind"


def test_two_processes_preparing_at_once_share_one_preparation(tmp_path: Path) -> None:
    """Two first runs on a new machine (or two test workers) prepare into one empty cache.

    Each process reports the config file's modification time once its call returned: the
    same time in both means the folder neither returned was replaced afterwards (before
    the lock, the second preparer deleted the folder the first had just returned).
    """
    import os
    import subprocess
    import sys

    report = (
        "from calscore.jobs.scoring.embedded_model import ensure_demo_model\n"
        "print((ensure_demo_model() / 'config.json').stat().st_mtime_ns)\n"
    )
    env = {**os.environ, "CALSCORE_CACHE": str(tmp_path)}
    children = [
        subprocess.Popen([sys.executable, "-c", report], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=600)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    first, second = (int(out.strip()) for out in outputs)
    assert first == second, "the folder one process returned was replaced by the other"
    models = tmp_path / "models"
    assert not list(models.glob(".preparing-*")), "a temporary build folder was left behind"
    assert len([p for p in models.iterdir() if not p.name.startswith(".")]) == 1
