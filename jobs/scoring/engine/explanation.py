"""`calscore explain` for the engine: the full first-token distribution of one text, label by label."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from calscore.jobs.scoring.explain import Explanation, LabelRow, TokenRow, VariantRow

if TYPE_CHECKING:
    from calscore.jobs.scoring.engine.first_token import FirstTokenScorer


def explain_first_token(scorer: "FirstTokenScorer", text: str, top_k: int = 10) -> Explanation:
    """Score one text and keep every intermediate number needed to explain it."""
    lp = scorer.token_logprobs([text])[0].astype(np.float64)
    enc = scorer.prompt.encode([text])
    order = np.argsort(-lp)[:top_k]
    top = [TokenRow(scorer.token_text(int(i)), int(i), float(lp[i])) for i in order]
    labels: list[LabelRow] = []
    for name, ids in zip(scorer.labels, scorer.verbalizers.token_ids):
        variants = [
            VariantRow(v.variant, v.token, v.token_id, float(math.exp(lp[v.token_id])), v.status)
            for v in scorer.verbalizers.variants
            if v.label == name
        ]
        labels.append(LabelRow(name, variants, float(np.logaddexp.reduce(lp[list(ids)]))))
    label_lp = np.array([row.logprob for row in labels])
    total = float(np.logaddexp.reduce(label_lp))
    best = int(np.argmax(label_lp))
    notes = []
    if enc.truncated[0]:
        notes.append(f"text truncated to {scorer.prompt.max_text_tokens} tokens ({scorer.prompt.truncation_side} side cut)")
    return Explanation(
        text=text,
        n_tokens=len(enc.ids[0]),
        truncated=enc.truncated[0],
        top_tokens=top,
        labels=labels,
        prediction=labels[best].label,
        raw_confidence=math.exp(label_lp[best] - total),
        coverage=math.exp(total),
        notes=notes,
    )
