"""The `transformers` backend: a local Hugging Face causal LM scored by the first-token engine.

    [model]                       # backend = "transformers" is the default
    path = "models/my-llm"        # or embedded = "smollm2-135m-instruct", or hub_id + revision
    dtype = "auto"                # float32 on CPU, bfloat16 on CUDA
    adapter = "/abs/adapters/x"   # optional: a LoRA adapter from `calscore finetune`, merged on load
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from calscore.jobs.scoring.fingerprint import model_fingerprint, verify_adapter
from calscore.jobs.scoring.model_ref import ModelRef
from calscore.jobs.scoring.prompting import PromptBuilder, PromptSpec


class TransformersBackend:
    name = "transformers"
    config = ModelRef

    def version_parts(self, config: ModelRef) -> dict[str, Any]:
        """The weights and tokenizer (a fingerprint), the precision asked for, and the adapter's
        content hash (only when there is one, so base task versions stay what they were)."""
        parts = {"model": model_fingerprint(config), "dtype": config.dtype}
        if config.adapter is not None:
            parts["adapter"] = verify_adapter(config.adapter, parts["model"])
        return parts

    def provenance(self, config: ModelRef) -> dict[str, Any]:
        from calscore.jobs.scoring.model_loading import resolve_device, resolve_dtype

        device = resolve_device(config.device)
        fingerprint = model_fingerprint(config)
        if config.adapter is not None:
            fingerprint += f"+adapter:{verify_adapter(config.adapter, fingerprint)}"
        return {"model": config.describe(), "model_fingerprint": fingerprint,
                "dtype": resolve_dtype(config.dtype, device), "device": device}

    def check(self, config: ModelRef, prompt: PromptSpec, labels: Mapping[str, Sequence[str]]) -> None:
        """What loading would refuse that the tokenizer alone decides (the prompt, answer variants that share
        a first token), without loading the weights."""
        from calscore.jobs.scoring.model_loading import load_tokenizer
        from calscore.jobs.scoring.verbalizers import resolve_verbalizers

        resolve_verbalizers(PromptBuilder(load_tokenizer(config), prompt), labels)

    def load(self, config: ModelRef, prompt: PromptSpec, labels: Mapping[str, Sequence[str]], *,
             token_budget: int | None = None, top_k: int = 0):
        from calscore.jobs.scoring.engine.first_token import FirstTokenScorer
        from calscore.jobs.scoring.model_loading import load_model

        return FirstTokenScorer(load_model(config), prompt, labels, token_budget=token_budget, top_k=top_k,
                                version_parts=self.version_parts(config))


TRANSFORMERS = TransformersBackend()
