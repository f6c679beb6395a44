"""Fingerprints of model references and LoRA adapters, so task_version changes when the model does.

A local folder is fingerprinted by its config, tokenizer files, and for each
weight file its size, its safetensors header (every tensor's name, dtype, shape
and offsets) and evenly spaced samples of its bytes. The header alone misses a
fine-tune (same names and shapes, new values); the samples catch it without
reading gigabytes of weights every night.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from calscore.jobs.common.hashing import sha256_of
from calscore.jobs.scoring.errors import ScorerError

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



# -- LoRA adapters (written by calscore.jobs.finetune) --------------------------------------------
# An adapter folder holds peft's two files and calscore's manifest. The content hash covers the two
# files peft loads (what changes the scores); the manifest records it with the base model's
# fingerprint, so a changed byte or another base model is refused before anything is loaded.
ADAPTER_MANIFEST = "calscore-adapter.json"
ADAPTER_FORMAT = "calscore-lora-adapter/1"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class AdapterError(ScorerError):
    """An adapter folder that cannot be used: missing files, tampered, or made for another base model."""


def adapter_content_hash(folder: Path) -> str:
    """sha256 over the names and sha256 of the files peft loads (config and safetensors weights)."""
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        h.update(f"{name}\0{sha256_of(folder / name)}\n".encode())
    return h.hexdigest()


def read_adapter_manifest(folder: Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterError(f"adapter folder not found: {folder}")
    path = folder / ADAPTER_MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdapterError(f"{folder} is not a calscore adapter: {ADAPTER_MANIFEST} is missing") from None
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{path}: cannot read the adapter manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ADAPTER_FORMAT:
        raise AdapterError(f"{path}: not a {ADAPTER_FORMAT} manifest")
    return manifest


def verify_adapter(folder: Path, base_fingerprint: str) -> str:
    """The adapter's content hash, after checking it is intact and made for this base model."""
    folder = Path(folder)
    manifest = read_adapter_manifest(folder)
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickled:
        raise AdapterError(f"adapter {folder} holds pickle files ({', '.join(pickled)}); calscore loads safetensors only")
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise AdapterError(f"adapter {folder} is incomplete: {', '.join(missing)} missing")
    content = adapter_content_hash(folder)
    if content != manifest.get("content_sha256"):
        raise AdapterError(
            f"adapter {folder} was changed after it was written (content sha256 {content[:12]}, manifest says "
            f"{str(manifest.get('content_sha256'))[:12]}); refusing it -- train it again with calscore finetune"
        )
    trained_on = (manifest.get("base_model") or {}).get("fingerprint")
    if trained_on != base_fingerprint:
        name = (manifest.get("base_model") or {}).get("reference", "?")
        raise AdapterError(
            f"adapter {folder} was trained on another base model ({name}, fingerprint {str(trained_on)[:40]}); "
            f"this task's model has fingerprint {base_fingerprint[:40]}"
        )
    return content
