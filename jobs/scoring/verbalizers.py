"""Verbalizers: each label's answer variants resolved to first-token ids, for one tokenizer, in context.

    verbalizers = resolve_verbalizers(builder, spec.labels)
    verbalizers.token_ids      # per label, deduplicated first-token ids
    verbalizers.variants       # what every variant resolved to, and why some were dropped

A variant is written the way it would follow the prompt: after a prompt ending
in a non-space character ("Sentiment:") the answer is " positive", after a
newline or space ("<|im_start|>assistant\\n") it is "positive" (a variant that
starts with whitespace is taken as written). Its first token is found by
tokenizing prompt + answer and reading the token after the prompt's tokens --
never with `convert_tokens_to_ids`, which returns the unknown id for strings
that are not literally a vocabulary entry (e.g. "YES" on many tokenizers).

Rules: ids are deduplicated within a label; an id claimed by two labels is an
error (`VerbalizerError`); a variant that resolves to the unknown token or to no
token is an error. A variant that is not one token (" NEGATIVE" -> " N" "EG"
"ATIVE") does not exist as a first token: it is dropped and reported when its
label has one-token variants (" N" also starts "No", "Neutral", ...), and scored
by its first token, reported as `partial`, only when the label has none.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.prompting import PromptBuilder


class VerbalizerError(ScorerError):
    """Answer variants that cannot be scored by first token (collisions, unknown tokens)."""


@dataclass(frozen=True)
class VariantResolution:
    label: str
    variant: str  # as written in the task file
    answer: str  # as it follows the prompt (maybe with a leading space)
    token_id: int
    token: str  # the first token, decoded
    n_tokens: int  # tokens the whole answer takes
    status: str  # "ok" (one token), "duplicate" (same id as an earlier variant), "dropped" / "partial" (n > 1 tokens)
    note: str = ""


@dataclass(frozen=True)
class Verbalizers:
    labels: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]  # per label, in label order, deduplicated
    variants: tuple[VariantResolution, ...]

    def report(self) -> list[dict]:
        """One JSON-friendly dict per variant."""
        return [asdict(v) for v in self.variants]

    def describe(self) -> str:
        lines = []
        for v in self.variants:
            extra = f"  ({v.status}{': ' + v.note if v.note else ''})" if v.status != "ok" else ""
            lines.append(f"{v.label:>12}  {v.variant!r:>14} -> {v.token!r} id {v.token_id}{extra}")
        return "\n".join(lines)


def _answer_form(context_text: str, variant: str) -> str:
    if variant[:1].isspace() or not context_text or context_text[-1].isspace():
        return variant
    return " " + variant


def _first_token(builder: PromptBuilder, context_text: str, context_ids: list[int], answer: str) -> tuple[int, int] | None:
    """(first token id, number of answer tokens) of `answer` right after the prompt, or None."""
    tok = builder.tokenizer
    tail = len(builder.tail_ids)
    full = builder.encode_prompt(context_text + answer)
    full = full[: len(full) - tail] if tail else full
    ctx = context_ids[: len(context_ids) - tail] if tail else context_ids
    prefix_text = tok.decode(ctx, skip_special_tokens=False)

    def continues(tid: int) -> bool:
        added = tok.decode(ctx + [tid], skip_special_tokens=False)
        if not added.startswith(prefix_text):
            return False
        piece = added[len(prefix_text) :]
        return bool(piece) and (answer.startswith(piece) or answer.lstrip().startswith(piece.lstrip()) and piece.strip() != "")

    if full[: len(ctx)] == ctx and len(full) > len(ctx):
        tid = full[len(ctx)]
        if continues(tid):
            return tid, len(full) - len(ctx)
    # The answer merged with the prompt's last token(s) (e.g. a prompt ending in a space):
    # the model cannot undo the prompt's tokens, so look for the token that continues them.
    for candidate in (answer, answer.lstrip()):
        ids = tok(candidate, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        if ids and continues(ids[0]):
            return ids[0], len(ids)
    return None


def resolve_verbalizers(builder: PromptBuilder, labels: Mapping[str, Sequence[str]], probe: str = "x") -> Verbalizers:
    """Resolve every label's variants to first-token ids for this tokenizer and prompt."""
    tok = builder.tokenizer
    context_text, context_ids = builder.context(probe)
    unk = tok.unk_token_id
    errors: list[str] = []
    found_per_label: dict[str, list[tuple[str, str, int, str, int]]] = {label: [] for label in labels}
    for label, variants in labels.items():
        for variant in variants:
            answer = _answer_form(context_text, variant)
            found = _first_token(builder, context_text, context_ids, answer)
            if found is None:
                errors.append(f"label {label!r}: variant {variant!r} does not resolve to a first token after the prompt")
                continue
            tid, n = found
            token = tok.decode([tid], skip_special_tokens=False)
            if unk is not None and tid == unk and token.strip() != variant.strip():
                errors.append(
                    f"label {label!r}: variant {variant!r} resolves to the unknown token {token!r} (id {tid}); "
                    "this tokenizer cannot write it -- remove it or spell it as the model would"
                )
                continue
            found_per_label[label].append((variant, answer, tid, token, n))

    owner: dict[int, tuple[str, str]] = {}
    per_label: dict[str, list[int]] = {label: [] for label in labels}
    resolved: list[VariantResolution] = []
    for label, found in found_per_label.items():
        has_single = any(n == 1 for *_, n in found)
        for variant, answer, tid, token, n in found:
            if n > 1 and has_single:
                # Its first token is only a fragment (" N" for " NEGATIVE"): other words start with it too.
                resolved.append(VariantResolution(
                    label, variant, answer, tid, token, n, "dropped",
                    f"{n} tokens; its first token {token!r} is not the word, and the label has one-token variants",
                ))
                continue
            if tid in owner and owner[tid][0] != label:
                other_label, other_variant = owner[tid]
                errors.append(
                    f"token {token!r} (id {tid}) is the first token of {variant!r} ({label!r}) and of "
                    f"{other_variant!r} ({other_label!r}); first-token scoring cannot tell them apart -- "
                    "drop one variant or use answers whose first tokens differ"
                )
                continue
            if tid in per_label[label]:
                status, note = "duplicate", f"same first token as {owner[tid][1]!r}; counted once"
            elif n > 1:
                status, note = "partial", f"{n} tokens and no one-token variant; scored by its first token {token!r}"
            else:
                status, note = "ok", ""
            if status != "duplicate":
                per_label[label].append(tid)
                owner[tid] = (label, variant)
            resolved.append(VariantResolution(label, variant, answer, tid, token, n, status, note))
    for label, ids in per_label.items():
        if not ids and not any(repr(label) in e for e in errors):
            errors.append(f"label {label!r}: no variant resolves to a usable first token")
    if errors:
        raise VerbalizerError("cannot resolve the answer variants:\n  " + "\n  ".join(errors))
    return Verbalizers(
        labels=tuple(labels),
        token_ids=tuple(tuple(per_label[label]) for label in labels),
        variants=tuple(resolved),
    )
