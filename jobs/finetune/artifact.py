"""Adapters as versioned artifacts: peft's safetensors weights and config, calscore's JSON manifest.

    folder = write_adapter(result.peft_model, root, manifest)   # root/<task>-<content hash[:12]>/
    update_manifest(folder, heldout=...)                         # figures measured after writing

A folder holds `adapter_model.safetensors` and `adapter_config.json` (what peft loads),
`calscore-adapter.json` (the manifest: format, content hash, base model fingerprint, LoRA
settings, objective, data hash, split, hyperparameters, seed, metrics, software versions) and
`split.json` (the row ids of each part). The folder is named by the content hash, so two
trainings that give the same weights give the same folder, and a task file naming it has one
task_version. `calscore.jobs.scoring.fingerprint.verify_adapter` checks all this before loading.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.hashing import sha256_of
from calscore.jobs.scoring.fingerprint import (
    ADAPTER_FORMAT,
    ADAPTER_MANIFEST,
    adapter_content_hash,
    read_adapter_manifest,
)

SPLIT_FILE = "split.json"


def _software() -> dict:
    import peft
    import torch
    import transformers

    from calscore import __version__

    return {"calscore": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_adapter(peft_model, root: Path, task_name: str, manifest: dict, split_ids: dict[str, list[str]]) -> Path:
    """Save the adapter with its manifest and split; return its folder, named by the content hash.

    `manifest` holds everything but the format, content hash, time and software versions, which
    are filled in here; `manifest["base_model"]["fingerprint"]` must be the base model's.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".writing-{uuid.uuid4().hex[:8]}"
    try:
        # peft records the base model's local path here; the fingerprint names it on any machine
        for config in peft_model.peft_config.values():
            config.base_model_name_or_path = manifest["base_model"]["fingerprint"]
        # no embedding layers are adapted; saying so also spares peft a hub look-up of the base model
        peft_model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
        (tmp / "README.md").unlink(missing_ok=True)  # peft's model card: paths and versions, not needed
        _write_json(tmp / SPLIT_FILE, split_ids)
        content = adapter_content_hash(tmp)
        manifest = {**manifest, "format": ADAPTER_FORMAT, "content_sha256": content,
                    "created_at": utcnow().isoformat(), "software": _software()}
        manifest["split"] = {**manifest.get("split", {}), "file": SPLIT_FILE, "file_sha256": sha256_of(tmp / SPLIT_FILE)}
        _write_json(tmp / ADAPTER_MANIFEST, manifest)
        folder = root / f"{task_name}-{content[:12]}"
        if folder.exists():  # the same weights trained again: the newer manifest and split replace the old
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def update_manifest(folder: Path, **fields) -> dict:
    """Add figures measured after the adapter was written (the manifest is not part of the content hash)."""
    manifest = read_adapter_manifest(folder)
    manifest.setdefault("metrics", {}).update(fields)
    _write_json(Path(folder) / ADAPTER_MANIFEST, manifest)
    return manifest
