"""Load a task's causal LM and tokenizer, like any Hugging Face checkpoint.

    loaded = load_model(spec.model)              # LoadedModel(model, tokenizer, device, dtype, reference)

`[model] path` is a local folder, `hub_id` + `revision` a hub checkpoint (taken
from the local cache first; the hub is only asked when it can be reached), and
`embedded` the prepared demo model. Always `trust_remote_code=False` and
safetensors weights. `dtype = "auto"` is bfloat16 on CUDA and float32 on CPU
(exact); float16 is never used on CPU (pathologically slow there). `device =
"auto"` is CUDA when present, else CPU.

A `[model] adapter` (a LoRA adapter folder from `calscore finetune`) is checked
against its manifest and this base model (`fingerprint.verify_adapter`) and
applied with peft from its safetensors file; by default it is merged into the
weights, so the engine runs a plain model at the base model's speed.

`LoadedModel.dtype` is the compute precision. bfloat16 on CPU is opt-in and
keeps float32 weights: the scorer runs the matrix multiplications in bfloat16
(oneDNN, as fast as a bfloat16 model) while the residual stream and logits stay
float32, which changes far fewer predictions than a model cast to bfloat16.
"""
from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.fingerprint import model_fingerprint, verify_adapter
from calscore.jobs.scoring.model_ref import ModelRef

_DTYPES = ("float32", "bfloat16", "float16")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


class ModelLoadError(ScorerError):
    """The model or its tokenizer cannot be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # a transformers PreTrainedModel (causal LM), in eval mode
    tokenizer: Any  # its fast tokenizer
    device: str  # "cpu", "cuda:0", ...
    dtype: str  # compute precision: "float32" or "bfloat16" (on CPU with float32 weights)
    reference: str  # what was loaded: a folder, "hub_id@revision" or "embedded:name"


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} was asked for but CUDA is not available; use device = \"auto\" or \"cpu\"")
    return "cuda:0" if device == "cuda" else device


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of auto, {', '.join(_DTYPES)}")
    if dtype == "float16" and device == "cpu":
        raise ModelLoadError("float16 on CPU is pathologically slow; use float32 (exact) or bfloat16")
    return dtype


def _hub_reachable(timeout: float = 2.0) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ModelLoadError(f"model folder not found: {folder}")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a Hugging Face model folder: config.json is missing")
    if not any(folder.glob("*.safetensors")):
        raise ModelLoadError(
            f"{folder} has no .safetensors weights (calscore loads safetensors only; convert with "
            "model.save_pretrained(folder, safe_serialization=True))"
        )
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"{folder} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); save it next to the "
            "weights with tokenizer.save_pretrained(folder)"
        )


def _source(ref: ModelRef) -> tuple[str, dict]:
    """(name_or_path, extra from_pretrained kwargs) for a model reference."""
    if ref.embedded is not None:
        from calscore.jobs.scoring.embedded_model import ensure_demo_model

        folder = ensure_demo_model()
        _check_folder(folder)
        return str(folder), {"local_files_only": True}
    if ref.path is not None:
        folder = Path(ref.path)
        _check_folder(folder)
        return str(folder), {"local_files_only": True}
    return ref.hub_id, {"revision": ref.revision}


def _from_pretrained(cls, name: str, kwargs: dict, what: str, ref: ModelRef):
    """Hub ids: local cache first; the hub only when reachable, so no network fails in seconds, not minutes."""
    if ref.hub_id is None:
        return cls.from_pretrained(name, **kwargs)
    try:
        return cls.from_pretrained(name, local_files_only=True, **kwargs)
    except OSError:
        pass
    if _offline() or not _hub_reachable():
        reason = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face hub cannot be reached"
        raise ModelLoadError(
            f"cannot load the {what} of {ref.hub_id}@{ref.revision}: {reason} and it is not in the local "
            "cache. Download it where there is network (huggingface-cli download "
            f"{ref.hub_id} --revision {ref.revision} --local-dir DIR), copy DIR here and set "
            '[model] path = "DIR" in the task file.'
        ) from None
    return cls.from_pretrained(name, local_files_only=False, **kwargs)


def apply_adapter(model, ref: ModelRef, *, merge: bool = True):
    """The base model with `ref.adapter` applied: merged into the weights, or as live LoRA layers.

    Checked first (intact, made for this base model); peft then reads adapter_config.json and
    adapter_model.safetensors from the local folder (never a pickle, never remote code).
    """
    from peft import PeftModel

    verify_adapter(ref.adapter, model_fingerprint(ref))
    peft_model = PeftModel.from_pretrained(model, str(ref.adapter), is_trainable=False)
    return peft_model.merge_and_unload() if merge else peft_model.get_base_model()


def _max_memory(limits: dict[str, str]) -> dict:
    """accelerate's keys: a GPU index as an int, 'cpu' and 'mps' as they are."""
    return {int(k.removeprefix("cuda:")) if k.startswith("cuda:") or k.isdigit() else k: v for k, v in limits.items()}


def _offload_folder(ref: ModelRef) -> Path:
    """Where weights that fit no device wait on disk: per model, in calscore's cache."""
    from calscore.jobs.scoring.embedded_model import cache_root

    return cache_root() / "offload" / hashlib.sha256(ref.describe().encode()).hexdigest()[:16]


def _input_device(model) -> str:
    """Where a sharded model takes its inputs: its embedding's device (the CPU when that waits on disk)."""
    device = model.get_input_embeddings().weight.device
    return "cpu" if device.type == "meta" else str(device)


def load_tokenizer(ref: ModelRef):
    """The fast tokenizer of the model a task spec names (without its weights); ModelLoadError with a fix."""
    from transformers import AutoTokenizer

    name, extra = _source(ref)
    try:
        tokenizer = _from_pretrained(AutoTokenizer, name, {**extra, "trust_remote_code": False}, "tokenizer", ref)
    except ModelLoadError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {ref.describe()}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"the tokenizer of {ref.describe()} is not a fast (Rust) tokenizer; calscore needs one "
            "(save a tokenizer.json with the model)"
        )
    return tokenizer


def load_model(ref: ModelRef, *, dtype_override: str | None = None, merge_adapter: bool = True) -> LoadedModel:
    """Load the model and tokenizer a task spec names; raise ModelLoadError with a fix on failure.

    With `[model] adapter`, the adapter is applied (merged unless `merge_adapter=False`)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = resolve_device(ref.device)
    dtype = resolve_dtype(dtype_override or ref.dtype, device)
    name, extra = _source(ref)
    tokenizer = load_tokenizer(ref)

    weights = "float32" if device == "cpu" else dtype  # see the module docstring
    kwargs = {
        **extra,
        "trust_remote_code": False,
        "use_safetensors": True,
        "dtype": getattr(torch, weights),
        "attn_implementation": "sdpa",
    }
    if ref.max_memory:  # sharded over devices (and disk) by accelerate, not moved to one device
        kwargs.update(device_map="auto", max_memory=_max_memory(ref.max_memory), offload_folder=str(_offload_folder(ref)))
    try:
        model = _from_pretrained(AutoModelForCausalLM, name, kwargs, "weights", ref)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the model {ref.describe()}: {exc}") from exc
    if ref.max_memory:
        device = _input_device(model)
    else:
        model.to(device)
    if ref.adapter is not None:
        model = apply_adapter(model, ref, merge=merge_adapter)
    model.eval()
    reference = name if ref.hub_id is None else f"{ref.hub_id}@{ref.revision}"
    if ref.embedded is not None:
        reference = f"embedded:{ref.embedded} ({name})"
    if ref.adapter is not None:
        reference += f" + adapter {ref.adapter}"
    return LoadedModel(model=model, tokenizer=tokenizer, device=device, dtype=dtype, reference=reference)
