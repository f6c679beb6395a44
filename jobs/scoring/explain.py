"""Explain one row's score, table by table: the model's top first tokens, how the
label variants add up to each label's probability, the prediction, raw
confidence and coverage (the layout of the "Classification with Confidence"
tutorial). A calibrated confidence and bucket are shown when given.

    result = explain_text(scorer, "A warm, funny film.")
    print(render_explanation(result))                        # raw scores only
    print(render_explanation(result, calibrated={"confidence": 0.83, "bucket": "review", "calibrator": "platt-1a2b"}))
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from calscore.jobs.scoring.engine import FirstTokenScorer


@dataclass(frozen=True)
class TokenRow:
    token: str
    token_id: int
    logprob: float

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True)
class VariantRow:
    variant: str
    token: str
    token_id: int
    probability: float
    status: str  # as in the verbalizer report: ok, duplicate (counted once), partial, dropped (not counted)


@dataclass(frozen=True)
class LabelRow:
    label: str
    variants: list[VariantRow]
    logprob: float  # log-sum-exp over the label's distinct token ids

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True)
class Explanation:
    text: str
    n_tokens: int
    truncated: bool
    top_tokens: list[TokenRow]
    labels: list[LabelRow]
    prediction: str
    raw_confidence: float  # predicted label's share of the label mass
    coverage: float  # total probability on all label tokens
    notes: list[str] = field(default_factory=list)


def explain_text(scorer: FirstTokenScorer, text: str, top_k: int = 10) -> Explanation:
    """Score one text and keep every intermediate number needed to explain it."""
    import numpy as np

    lp = scorer.token_logprobs([text])[0].astype(np.float64)
    enc = scorer.prompt.encode([text])
    order = np.argsort(-lp)[:top_k]
    decode = scorer.token_text
    top = [TokenRow(decode(int(i)), int(i), float(lp[i])) for i in order]
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


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


def render_explanation(result: Explanation, calibrated: dict | None = None) -> str:
    """The explanation as plain-text tables.

    `calibrated` is the hook for the calibration step: a dict with `confidence` (the
    calibrated probability of the predicted label) and optionally `label` (if the
    calibrated prediction differs), `bucket` and `calibrator` (its version id).
    """
    out = [f"text: {result.text!r}", f"prompt tokens: {result.n_tokens}{'  (truncated)' if result.truncated else ''}", ""]
    out.append("Top first tokens")
    rows = [
        [str(rank), repr(t.token), str(t.token_id), f"{t.logprob:.4f}", f"{t.probability:.4f}"]
        for rank, t in enumerate(result.top_tokens, 1)
    ]
    out += _table(["rank", "token", "id", "log-prob", "probability"], rows, right={0, 2, 3, 4})
    out += ["", "Label aggregation (first-token probability of each variant, summed per label)"]
    rows = []
    for label in result.labels:
        for v in label.variants:
            counted = {"ok": "", "partial": "first token only", "duplicate": "same token, counted once",
                       "dropped": "not counted"}.get(v.status, v.status)
            rows.append([label.label, repr(v.variant), repr(v.token), f"{v.probability:.4f}", counted])
        rows.append([label.label, "= label total", "", f"{label.probability:.4f}", f"log-prob {label.logprob:.4f}"])
    out += _table(["label", "variant", "token", "probability", "note"], rows, right={3})
    out += [
        "",
        f"prediction:      {result.prediction}",
        f"raw confidence:  {result.raw_confidence:.4f}   (predicted label's share of the label mass)",
        f"coverage:        {result.coverage:.4f}   (probability on any label token)",
    ]
    if calibrated is not None:
        label = calibrated.get("label", result.prediction)
        line = f"calibrated:      {float(calibrated['confidence']):.4f}"
        if label != result.prediction:
            line += f"   (calibrated prediction: {label})"
        out.append(line)
        if calibrated.get("bucket") is not None:
            out.append(f"bucket:          {calibrated['bucket']}")
        if calibrated.get("calibrator") is not None:
            out.append(f"calibrator:      {calibrated['calibrator']}")
    else:
        out.append("calibrated:      (no calibrator applied)")
    out += [f"note: {n}" for n in result.notes]
    return "\n".join(out)
