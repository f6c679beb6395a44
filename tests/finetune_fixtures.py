"""Tiny LoRA adapters for tests: trained for real (peft) on a tiny local model, in seconds."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from flow_fixtures import WORDS_NEG, WORDS_POS

@contextmanager
def one_torch_thread():
    """Tiny models' ops are too small to split: one thread is faster, and far faster on a busy
    machine, where two threads spin waiting for each other (measured: 17 s against 67 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# short texts whose label a two-layer model can learn in two epochs
QUICK = dict(max_epochs=2, patience=2, learning_rate=3e-3, batch_size=8)


def yes_no_rows(n: int, start: int = 0) -> tuple[list[str], np.ndarray]:
    """(texts, label index: 0 = yes, 1 = no) alternating, with words that tell the label."""
    texts, y = [], []
    for i in range(start, start + n):
        positive = i % 2 == 0
        words = WORDS_POS if positive else WORDS_NEG
        texts.append(f"{words[i % len(words)]} {words[(i // 2) % len(words)]}")
        y.append(0 if positive else 1)
    return texts, np.array(y)


def train_tiny(spec, seed: int = 0):
    """A TrainResult for `spec` (a tiny-model task with yes/no labels): 24 training rows, 8 validation."""
    from calscore.jobs.finetune.training import Rows, TrainConfig, train_adapter
    from calscore.jobs.scoring.model_loading import load_model

    train_texts, train_y = yes_no_rows(24)
    val_texts, val_y = yes_no_rows(8, start=100)
    return train_adapter(load_model(spec.model), spec.prompt, spec.labels, Rows(train_texts, train_y),
                         Rows(val_texts, val_y), TrainConfig(seed=seed, **QUICK))


def write_tiny_adapter(spec, root: Path, result) -> Path:
    """Write a trained result as an adapter folder for `spec`'s model, with a minimal manifest."""
    from calscore.jobs.finetune.artifact import write_adapter
    from calscore.jobs.scoring.fingerprint import model_fingerprint

    manifest = {"base_model": {"reference": spec.model.describe(), "fingerprint": model_fingerprint(spec.model)},
                "lora": result.lora, "metrics": {"training": result.metrics()}}
    return write_adapter(result.peft_model, root, spec.name, manifest, {"train": [], "validation": [], "heldout": []})
