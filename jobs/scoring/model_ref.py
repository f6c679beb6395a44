"""`[model]` of the transformers backend: which causal LM, in which precision, on which device."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from calscore.jobs.common.config import StrictModel


class ModelRef(StrictModel):
    """A Hugging Face causal LM: exactly one of `embedded`, `path` or `hub_id` (+ `revision`)."""

    backend: Literal["transformers"] = "transformers"

    embedded: Literal["smollm2-135m-instruct"] | None = None
    path: Path | None = None
    hub_id: str | None = None
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    device: str = "auto"
    # A LoRA adapter folder written by `calscore finetune` (safetensors + manifest), applied on load.
    adapter: Path | None = None
    # A model larger than one accelerator: memory per device ("cuda:0" = "20GiB", ..., "cpu" = "64GiB");
    # the model is then sharded over them by accelerate (device_map = "auto"), the rest offloaded to disk.
    max_memory: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "ModelRef":
        given = [k for k in ("embedded", "path", "hub_id") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of embedded, path, hub_id (got {given or 'none'})")
        if self.hub_id is not None and not self.revision:
            raise ValueError("a hub_id needs a pinned revision (commit sha or tag), so task_version is stable")
        if self.revision is not None and self.hub_id is None:
            raise ValueError("revision only applies to hub_id")
        if self.max_memory is not None and self.adapter is not None:
            raise ValueError("max_memory (sharding) and adapter cannot be combined yet: merge the adapter into a folder")
        return self

    @field_validator("max_memory")
    @classmethod
    def _max_memory(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None:
            bad = [k for k in v if not re.fullmatch(r"cpu|cuda:\d+|mps|\d+", k)]
            if bad or not v:
                raise ValueError(f"max_memory keys are devices (cpu, cuda:N, mps), got {bad or 'none'}")
        return v

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, v: Path | None) -> Path | None:
        # The task file's loader resolves only `path` against the file's folder; an absolute
        # adapter path means the same folder wherever the command runs.
        if v is not None and not v.is_absolute():
            raise ValueError(f"adapter must be an absolute path (got {str(v)!r}); `calscore finetune` prints it")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError("device must be auto, cpu, cuda, cuda:N or mps")
        return v

    def describe(self) -> str:
        if self.embedded:
            base = f"embedded:{self.embedded}"
        elif self.path is not None:
            base = str(self.path)
        else:
            base = f"{self.hub_id}@{self.revision}"
        return base if self.adapter is None else f"{base} + adapter {self.adapter}"
