"""The prompt part every row shares, computed once and reused as a key/value cache.

The shared part (instruction, few-shot examples, chat preamble) is the longest
common prefix of the rows' *token ids* (see `PromptBuilder.shared_prefix_ids`),
never a separately tokenized prefix string, whose BPE merges at the boundary can
differ. Its keys and values are computed once per precision and handed to each
batch as broadcast views, so the only copy is the one a forward makes when it
appends the rows' own keys and values.
"""
from __future__ import annotations

import inspect
import logging
from typing import Callable, ContextManager

log = logging.getLogger(__name__)


def cache_argument(model) -> str:
    """The forward's name for the key/value cache: `cache` (transformers >= 5.x), else `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class SharedPrefix:
    """Token ids every row starts with, and their key/value cache per precision."""

    def __init__(self, model, prefix_ids: list[int], device):
        self.model = model
        self.ids = list(prefix_ids)
        self.device = device
        self._kv: dict[bool, list[tuple]] = {}  # exact (float32) or fast matmuls -> per-layer (keys, values)
        self.tokens_computed = 0
        self.argument = cache_argument(model)

    def __len__(self) -> int:
        return len(self.ids)

    def covers(self, seq: list[int]) -> bool:
        """Whether a row starts with the prefix and has tokens of its own after it."""
        return bool(self.ids) and len(seq) > len(self.ids) and seq[: len(self.ids)] == self.ids

    def ensure(self, exact: bool, forward_context: Callable[[bool], ContextManager]) -> bool:
        """Compute the cache for this precision once (inside `forward_context(exact)`);
        False, and prefix reuse off, when the model's cache cannot be reused."""
        if exact in self._kv:
            return True
        import torch

        ids = torch.tensor([self.ids], dtype=torch.long, device=self.device)
        try:
            with forward_context(exact):
                out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
            kv = [(layer.keys, layer.values) for layer in getattr(out, self.argument).layers]
            if any(k is None or k.shape[-2] != len(self.ids) for k, _ in kv):
                raise ValueError("unexpected cache layout")
        except (AttributeError, ValueError, TypeError) as exc:
            log.warning("prefix KV-cache reuse is not available for this model (%s); running full forwards", exc)
            self.ids = []
            return False
        self._kv[exact] = kv
        self.tokens_computed += len(self.ids)
        return True

    def cache_for(self, batch_size: int, exact: bool):
        """A fresh cache holding the prefix for `batch_size` rows (a forward extends it in place)."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        expanded = [(k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)) for k, v in self._kv[exact]]
        cache = DynamicCache(config=self.model.config)
        if len(cache.layers) == len(expanded) and all(type(layer) is DynamicLayer for layer in cache.layers):
            for layer, (k, v) in zip(cache.layers, expanded):
                layer.lazy_initialization(k, v)
                layer.keys, layer.values = k, v
            return cache
        return DynamicCache(expanded, config=self.model.config)
