"""CPU attention that reads grouped key/value heads directly (no copies), as a named attention function.

With a padding mask, transformers' SDPA integration repeats every key/value head
num_heads / num_kv_heads times before attention (CUDA's fused kernels need that). On
CPU, torch's SDPA takes `enable_gqa=True` together with a mask, which saves copying
the shared-prefix cache per query head in every layer (measured: up to 1.8x faster on
short rows, same numbers). Registering it under its own name changes only the models
that are switched to it (no process-wide environment switch).
"""
from __future__ import annotations

CPU_GQA_ATTENTION = "calscore_cpu_gqa_sdpa"


def _cpu_gqa_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' SDPA attention with `enable_gqa` whenever a mask is given (what it does on XPU/MPS)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if attention_mask is None or groups == 1 or kwargs.get("position_bias") is not None or kwargs.get("softcap"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=False, enable_gqa=True
    )
    return out.transpose(1, 2).contiguous(), None


def use_cpu_gqa_attention(model) -> bool:
    """Switch a CPU model that uses SDPA to the grouped-head attention above; False when it does not apply."""
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 5):  # enable_gqa arrived in torch 2.5
        return False
    AttentionInterface.register(CPU_GQA_ATTENTION, _cpu_gqa_sdpa)
    AttentionMaskInterface.register(CPU_GQA_ATTENTION, sdpa_mask)
    model.set_attn_implementation(CPU_GQA_ATTENTION)
    return True
