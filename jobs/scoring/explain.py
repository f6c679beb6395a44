"""Explain one row's score, table by table: the model's top first tokens, how the
label variants add up to each label's probability, the prediction, raw
confidence and coverage (the layout of the "Classification with Confidence"
tutorial). A calibrated confidence and bucket are shown when given.

    result = scorer.explain("A warm, funny film.")           # any backend (see scorer.Scorer)
    print(render_explanation(result))                        # raw scores only
    print(render_explanation(result, calibrated={"confidence": 0.83, "bucket": "review", "calibrator": "platt-1a2b"}))

Backends that see only part of the distribution leave what they did not see
empty: a variant's probability is None when its token was not reported, a label
is `observed=False` when its value was imputed, and coverage is then a lower bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TokenRow:
    token: str
    token_id: int | None  # None: the backend reports token text only (an HTTP endpoint)
    logprob: float

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True)
class VariantRow:
    variant: str
    token: str
    token_id: int | None  # None: matched by token text (an HTTP endpoint)
    probability: float | None  # None: the backend did not report this token
    status: str  # as in the verbalizer report: ok, duplicate (counted once), partial, dropped (not counted)


@dataclass(frozen=True)
class LabelRow:
    label: str
    variants: list[VariantRow]
    logprob: float  # log-sum-exp over the label's distinct token ids
    observed: bool = True  # False: none of its tokens was reported; logprob is imputed (see scoring.schema)

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True)
class Explanation:
    text: str
    n_tokens: int | None
    truncated: bool
    top_tokens: list[TokenRow]
    labels: list[LabelRow]
    prediction: str
    raw_confidence: float  # predicted label's share of the label mass
    coverage: float  # total probability on all label tokens
    coverage_is_lower_bound: bool = False
    notes: list[str] = field(default_factory=list)
    agreement: list[float] | None = None  # `combined`: each label's smoothed agreement log-probability, label order


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
    tokens = "not reported" if result.n_tokens is None else str(result.n_tokens)
    out = [f"text: {result.text!r}", f"prompt tokens: {tokens}{'  (truncated)' if result.truncated else ''}", ""]
    out.append("Top first tokens")
    rows = [
        [str(rank), repr(t.token), "-" if t.token_id is None else str(t.token_id), f"{t.logprob:.4f}",
         f"{t.probability:.4f}"]
        for rank, t in enumerate(result.top_tokens, 1)
    ]
    out += _table(["rank", "token", "id", "log-prob", "probability"], rows, right={0, 2, 3, 4})
    out += ["", "Label aggregation (first-token probability of each variant, summed per label)"]
    rows = []
    for label in result.labels:
        for v in label.variants:
            counted = {"ok": "", "partial": "first token only", "duplicate": "same token, counted once",
                       "dropped": "not counted"}.get(v.status, v.status)
            if v.probability is None:
                shown, counted = "-", "not reported" + (f"; {counted}" if counted else "")
            else:
                shown = f"{v.probability:.4f}"
            rows.append([label.label, repr(v.variant), repr(v.token), shown, counted])
        note = f"log-prob {label.logprob:.4f}" + ("" if label.observed else " (imputed: no token of it was reported)")
        rows.append([label.label, "= label total", "", f"{label.probability:.4f}", note])
    out += _table(["label", "variant", "token", "probability", "note"], rows, right={3})
    out += [
        "",
        f"prediction:      {result.prediction}",
        f"raw confidence:  {result.raw_confidence:.4f}   (predicted label's share of the label mass)",
        f"coverage:        {result.coverage:.4f}   (probability on any label token"
        + (", a lower bound: only part of the distribution was reported)" if result.coverage_is_lower_bound else ")"),
    ]
    if calibrated is not None and calibrated.get("confidence") is not None:
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
        if calibrated is not None and calibrated.get("bucket") is not None:
            out.append(f"bucket:          {calibrated['bucket']}   (on the raw confidence, as the nightly run decides)")
    if calibrated is not None and calibrated.get("floor"):
        out.append(f"floor:           {calibrated['floor']}")
    out += [f"note: {n}" for n in result.notes]
    return "\n".join(out)
