"""The `transformers_sampling` backend: consistency (and combined) on the local engine's model.

    [model]
    backend = "transformers_sampling"
    embedded = "smollm2-135m-instruct"     # any [model] of the transformers backend
    method = "consistency"                 # or "combined": first-token log-probabilities + agreement
    samples = 20
    temperature = 1.0
    max_tokens = 4

Sampling is ancestral and exact, with identical prefixes merged: the prompt's keys and
values are computed once, the N draws are split among the sampled tokens by one
multinomial draw, and only distinct continuations are extended, and only while more
tokens could change how the answer parses (its first word unfinished and still the start
of a variant), up to an end-of-text token or `max_tokens`. N samples cost a
handful of forward passes instead of N generations, and their answers are distributed
exactly as N independent `generate(do_sample=True, top_k=0, top_p=1)` calls.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field

from calscore.jobs.scoring.backends.combined import CombinedScorer
from calscore.jobs.scoring.backends.consistency import AnswerParser, ConsistencyScorer
from calscore.jobs.scoring.backends.transformers import TRANSFORMERS
from calscore.jobs.scoring.engine.prefix_cache import SharedPrefix
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.model_ref import ModelRef
from calscore.jobs.scoring.prompting import PromptBuilder, PromptSpec


# Continuations per forward pass: their keys and values are copied onto the prompt's, so
# this bounds memory when a large N spreads over many rare tokens.
FORWARD_ROWS = 64


class LocalSamplingConfig(ModelRef):
    backend: Literal["transformers_sampling"]
    method: Literal["consistency", "combined"] = "consistency"
    samples: int = Field(20, ge=1, le=1_000_000)
    temperature: float = Field(1.0, gt=0.0, le=5.0)
    max_tokens: int = Field(4, ge=1, le=64)
    smoothing: float = Field(0.5, gt=0.0)
    seed: int = 0

    @property
    def sampling(self) -> dict[str, Any]:
        return {"samples": self.samples, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "smoothing": self.smoothing, "seed": self.seed}


class LocalSampler:
    """N sampled answers per row from a loaded causal LM (see the module docstring)."""

    def __init__(self, loaded, prompt: PromptSpec, temperature: float, max_tokens: int, seed: int,
                 parser: AnswerParser):
        self.loaded = loaded
        self.parser = parser
        self.builder = PromptBuilder(loaded.tokenizer, prompt)
        self.temperature, self.max_tokens, self.seed = float(temperature), int(max_tokens), int(seed)
        # where generate() would stop: the generation config's end tokens and the tokenizer's
        ends = getattr(loaded.model.generation_config, "eos_token_id", None)
        ends = ends if isinstance(ends, (list, tuple)) else [ends]
        self.eos = {int(t) for t in (*ends, loaded.tokenizer.eos_token_id) if t is not None}
        self.forward_passes = 0

    def _next_token_probs(self, shared, last_prompt_token: int, prefixes: list[tuple[int, ...]]):
        """Next-token probabilities after prompt + each prefix (all one length), the prompt's cache reused."""
        import torch

        out = []
        for start in range(0, len(prefixes), FORWARD_ROWS):
            chunk = prefixes[start:start + FORWARD_ROWS]
            self.forward_passes += 1
            ids = torch.tensor([[last_prompt_token, *p] for p in chunk], device=shared.device)
            with torch.inference_mode():
                logits = self.loaded.model(input_ids=ids, logits_to_keep=1,
                                           **{shared.argument: shared.cache_for(len(chunk), True)}).logits[:, -1, :]
            out.append(torch.softmax(logits.float() / self.temperature, dim=-1))
        return torch.cat(out)

    def _sample_row(self, prompt_ids: list[int], n: int, generator) -> list[str]:
        import torch

        tok = self.loaded.tokenizer
        # the prompt but its last token, computed once; each step feeds that token + the prefixes
        shared = SharedPrefix(self.loaded.model, prompt_ids[:-1], torch.device(self.loaded.device))
        if not shared.ensure(True, lambda exact: torch.inference_mode()):
            raise ScorerError("this model's key/value cache cannot be reused; local sampling needs it")
        live: dict[tuple[int, ...], int] = {(): n}
        done: dict[tuple[int, ...], int] = {}
        for _ in range(self.max_tokens):
            if not live:
                break
            prefixes = list(live)
            probs = self._next_token_probs(shared, prompt_ids[-1], prefixes)
            grown: dict[tuple[int, ...], int] = {}
            for prefix, row in zip(prefixes, probs):
                draws = torch.multinomial(row, live[prefix], replacement=True, generator=generator)
                for token, count in zip(*np.unique(draws.numpy(), return_counts=True)):
                    seq = prefix + (int(token),)
                    text = tok.decode(list(seq), skip_special_tokens=True)
                    finished = int(token) in self.eos or self.parser.settled(text)
                    target = done if finished else grown
                    target[seq] = target.get(seq, 0) + int(count)
            live = grown
        done.update(live)
        return [tok.decode(list(seq), skip_special_tokens=True) for seq, count in done.items() for _ in range(count)]

    def sample(self, texts: Sequence[str], n: int) -> list[list[str]]:
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        return [self._sample_row(ids, n, generator) for ids in self.builder.encode(texts).ids]

    def describe(self) -> dict[str, Any]:
        return {"backend": "transformers_sampling", "model": self.loaded.reference,
                "forward_passes": self.forward_passes}


class LocalSamplingBackend:
    name = "transformers_sampling"
    config = LocalSamplingConfig

    def version_parts(self, config: LocalSamplingConfig) -> dict[str, Any]:
        return {**TRANSFORMERS.version_parts(config), "method": config.method, "sampling": config.sampling}

    def provenance(self, config: LocalSamplingConfig) -> dict[str, Any]:
        return TRANSFORMERS.provenance(config)

    def check(self, config: LocalSamplingConfig, prompt: PromptSpec, labels: Mapping[str, Sequence[str]]) -> None:
        """`combined` scores first tokens too: its answer variants are checked as the transformers backend's are."""
        if config.method == "combined":
            TRANSFORMERS.check(config, prompt, labels)

    def load(self, config: LocalSamplingConfig, prompt: PromptSpec, labels: Mapping[str, Sequence[str]]):
        from calscore.jobs.scoring.engine.first_token import FirstTokenScorer
        from calscore.jobs.scoring.model_loading import load_model

        loaded = load_model(config)
        parts = self.version_parts(config)
        sampler = LocalSampler(loaded, prompt, config.temperature, config.max_tokens, config.seed,
                               AnswerParser(labels))
        consistency = ConsistencyScorer(sampler, labels, config.samples, config.smoothing, parts)
        if config.method == "consistency":
            return consistency
        return CombinedScorer(FirstTokenScorer(loaded, prompt, labels, version_parts=parts), consistency, parts)


TRANSFORMERS_SAMPLING = LocalSamplingBackend()
