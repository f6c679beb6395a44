"""Fingerprints of model references, so task_version changes when the model does.

A local folder is fingerprinted by its config, tokenizer files, and for each
weight file its size, its safetensors header (every tensor's name, dtype, shape
and offsets) and evenly spaced samples of its bytes. The header alone misses a
fine-tune (same names and shapes, new values); the samples catch it without
reading gigabytes of weights every night.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from calscore.jobs.common.hashing import sha256_of

if TYPE_CHECKING:
    from calscore.jobs.scoring.model_ref import ModelRef

_CONFIG_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def _safetensors_header(path: Path) -> bytes:
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        return f.read(min(size, 100_000_000))


_SAMPLES = 1024
_SAMPLE_BYTES = 4096


def _update_with_samples(h, path: Path, start: int) -> None:
    """Feed `_SAMPLES` evenly spaced blocks of the file from `start` on (all of it when small)."""
    span = path.stat().st_size - start
    with path.open("rb") as f:
        if span <= _SAMPLES * _SAMPLE_BYTES:
            f.seek(start)
            h.update(f.read())
            return
        step = (span - _SAMPLE_BYTES) // (_SAMPLES - 1)
        for i in range(_SAMPLES):
            f.seek(start + i * step)
            h.update(f.read(_SAMPLE_BYTES))


def folder_fingerprint(folder: Path) -> str:
    """sha256 over config/tokenizer file contents and weight-file sizes, headers and sampled bytes."""
    h = hashlib.sha256()
    for name in _CONFIG_FILES:
        p = folder / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes())
    for p in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
        start = 0
        if p.suffix == ".safetensors":
            header = _safetensors_header(p)
            h.update(header)
            start = 8 + len(header)
        _update_with_samples(h, p, start)
    return h.hexdigest()


def model_fingerprint(ref: "ModelRef") -> str:
    """A stable string identifying the exact weights and tokenizer behind a model reference."""
    if ref.embedded is not None:
        from calscore.jobs.scoring.embedded_model import gguf_path

        return f"embedded:{ref.embedded}:gguf-sha256:{sha256_of(gguf_path())}"
    if ref.path is not None:
        if not Path(ref.path).is_dir():
            raise FileNotFoundError(f"model folder not found: {ref.path}")
        return f"folder:{folder_fingerprint(Path(ref.path))}"
    return f"hub:{ref.hub_id}@{ref.revision}"

