"""The first-token engine for local Hugging Face causal LMs (the `transformers` backend).

`first_token.FirstTokenScorer` is the scorer; `packing` groups rows into token-budget
batches, `prefix_cache` reuses the prompt part every row shares, `precision` runs the
opt-in bfloat16 mode on CPU, `attention` lets CPU attention read grouped key/value
heads without copying them, and `explanation` builds `calscore explain`'s tables.
"""
