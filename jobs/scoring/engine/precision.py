"""Precision of CPU forward passes: exact float32, or bfloat16 matmuls on float32 weights.

The opt-in bfloat16 mode on CPU keeps the weights, residual stream and logits in
float32 and rounds only the inputs of the linear layers to bfloat16 (oneDNN's
"fpmath" mode; fast on CPUs with native bfloat16 kernels, e.g. AMX). That moves
label log-odds ~3x less than a model cast to bfloat16 (measured on SST-2 with the
demo model: 99.8% vs 96.7% of predicted labels unchanged).

Two facts shape this module:
- The switch is process-wide in torch, so it is turned on around each linear
  layer only (with it on, CPU attention gets ~3x slower), and every forward pass
  of every engine in the process runs under `FORWARD_LOCK`: an exact scorer in
  another thread never sees the switch on.
- Not every CPU takes oneDNN's bfloat16 path: where it does not, the switch
  changes nothing (bit-identical results, no speed-up). `bf16_matmul_takes_effect`
  measures that once per process, and the engine then runs plain float32 and
  says so instead of claiming a precision it does not use.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Callable, Iterator

FORWARD_LOCK = threading.Lock()
# A bfloat16 input keeps 8 bits of mantissa: a matmul rounded through it is off by ~1e-3
# relative, a float32 one by ~1e-7. Anything above this threshold took the bfloat16 path.
_BF16_RELATIVE_ERROR = 1e-5


def _switches() -> tuple[Callable[[], None], Callable[[], None]]:
    """(turn bfloat16 matmuls on, restore) for this torch version's global switch."""
    import torch

    mkldnn_matmul = getattr(torch.backends.mkldnn, "matmul", None)
    if mkldnn_matmul is not None and hasattr(mkldnn_matmul, "fp32_precision"):
        previous = mkldnn_matmul.fp32_precision

        def fast() -> None:
            mkldnn_matmul.fp32_precision = "bf16"

        def restore() -> None:
            mkldnn_matmul.fp32_precision = previous

        return fast, restore
    previous = torch.get_float32_matmul_precision()  # older torch: the same oneDNN mode behind this switch
    return (lambda: torch.set_float32_matmul_precision("medium")), (lambda: torch.set_float32_matmul_precision(previous))


@functools.cache
def bf16_matmul_takes_effect() -> bool:
    """Whether the switch really computes a float32 linear layer with bfloat16 inputs on this CPU."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 512, generator=generator)
    w = torch.randn(512, 512, generator=generator)
    exact = x.double() @ w.double().T
    fast, restore = _switches()
    with FORWARD_LOCK:
        fast()
        try:
            switched = torch.nn.functional.linear(x, w).double()
        finally:
            restore()
    error = ((switched - exact).abs().max() / exact.abs().max()).item()
    return error > _BF16_RELATIVE_ERROR


@contextlib.contextmanager
def bf16_linear_matmuls(model) -> Iterator[None]:
    """Inside: every linear layer but the LM head multiplies in bfloat16 (float32 weights and accumulation).

    Call with FORWARD_LOCK held. Hooks flip the switch around each linear layer and are
    removed afterwards; the LM head stays exact, so logits keep float32 resolution.
    """
    import torch

    fast, restore = _switches()
    head = model.get_output_embeddings()
    handles = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            handles.append(module.register_forward_pre_hook(lambda *_: fast()))
            handles.append(module.register_forward_hook(lambda *_: restore()))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        restore()
