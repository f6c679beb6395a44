"""Rows into forward passes: token-budget batches, longest first, left-padded.

Sorting by length keeps padding small; the budget counts padded tokens (rows x the
batch's longest row), not rows, so long rows go in small batches and short rows in
large ones. Left padding puts every row's last prompt token in the last column,
where the next-token logits are read.
"""
from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np


def token_budget_batches(lengths: Mapping[int, int], rows: Sequence[int], budget: int) -> Iterator[list[int]]:
    """Rows grouped longest first into batches whose padded size fits `budget` tokens (at least one row each)."""
    order = sorted(rows, key=lambda r: lengths[r], reverse=True)
    i = 0
    while i < len(order):
        width = lengths[order[i]]
        take = max(1, budget // max(width, 1))
        yield order[i : i + take]
        i += take


def left_padded(seqs: Sequence[Sequence[int]], past: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, position_ids) for sequences that follow `past` cached prefix tokens.

    The mask covers prefix + suffix; positions continue after the prefix for every row.
    """
    B = len(seqs)
    L = max(len(s) for s in seqs)
    input_ids = np.full((B, L), pad_id, dtype=np.int64)
    mask = np.zeros((B, past + L), dtype=np.int64)
    mask[:, :past] = 1
    positions = np.full((B, L), past, dtype=np.int64)
    for i, s in enumerate(seqs):
        n = len(s)
        input_ids[i, L - n :] = s
        mask[i, past + L - n :] = 1
        positions[i, L - n :] = np.arange(past, past + n)
    return input_ids, mask, positions


def model_inputs(seqs: Sequence[Sequence[int]], past: int, pad_id: int, device, prefix, exact: bool = True) -> dict:
    """The model's keyword arguments for one forward pass over `seqs`, reading only the last position's
    logits; after `past` tokens of a shared prefix, its key/value cache (`prefix`, a SharedPrefix)."""
    import torch

    input_ids, mask, positions = left_padded(seqs, past, pad_id)
    kwargs = dict(
        input_ids=torch.from_numpy(input_ids).to(device),
        attention_mask=torch.from_numpy(mask).to(device),
        position_ids=torch.from_numpy(positions).to(device),
        logits_to_keep=1,
        use_cache=bool(past),
    )
    if past:
        kwargs[prefix.argument] = prefix.cache_for(len(seqs), exact)
    return kwargs
