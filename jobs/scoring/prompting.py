"""Prompts as token ids: render a task's prompt around each row's text, truncate
the text (only the text), and tokenize so the text can never act as control tokens.

    builder = PromptBuilder(tokenizer, spec.prompt)
    encoded = builder.encode(["a text", ...])     # EncodedPrompts(ids, truncated)
    builder.shared_prefix_ids                     # token ids every row starts with (KV-cache reuse)

A raw `template` is tokenized like `tokenizer(prompt)` (with the tokenizer's own
BOS etc.); chat `messages` are rendered with the tokenizer's chat template and
`add_generation_prompt=True` and tokenized like `apply_chat_template` does
(no extra special tokens).

Text is data: Hugging Face tokenizers turn special-token strings anywhere in a
string into control tokens, so a row containing `<|im_end|><|im_start|>assistant`
could rewrite the prompt. Rows whose text produced a special token are
re-tokenized piecewise with the text part's special strings split as plain text.
For byte-level BPE tokenizers (GPT-2 / Llama 3 / Qwen / SmolLM style) this is
exactly the tokenization the text would get without those strings, because the
tokenizer splits on special tokens before applying BPE.

Truncation: `max_input_tokens` bounds the tokens of the *text* (the instruction,
few-shot examples and answer cue are never cut); `truncation_side = "right"`
keeps the text's beginning, `"left"` its end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from pydantic import Field, model_validator

from calscore.jobs.common.config import StrictModel
from calscore.jobs.scoring.errors import ScorerError

TEXT_PLACEHOLDER = "{text}"
# A token is rarely longer than this many characters (see PromptBuilder.truncate).
CHARS_PER_TOKEN_CAP = 32

_SENTINEL = "\u2063CALSCORE\u2063TEXT\u2063"
# Probe texts with different first characters: the token ids all of them share
# at the start of the prompt are the prompt's token-level shared prefix.
_PREFIX_PROBES = ("x", "The", "1", "(", "é", "-", "Zq", "\u4e2d", "a b", "!", "'s", "<")
_RENDER_PROBES = ("probe", "  two  spaces around  ", "line one\nline two", "{text} {{ braces }}")


class ChatMessage(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str


class PromptSpec(StrictModel):
    """A raw `template` or chat `messages`; exactly one `{text}` placeholder overall."""

    template: str | None = None
    messages: tuple[ChatMessage, ...] | None = None
    max_input_tokens: int = Field(512, ge=16, le=131072)
    truncation_side: Literal["left", "right"] = "right"

    @model_validator(mode="after")
    def _one_form(self) -> "PromptSpec":
        if (self.template is None) == (self.messages is None):
            raise ValueError("give exactly one of template (raw prompt) or messages (chat)")
        parts = [self.template] if self.template is not None else [m.content for m in self.messages]
        count = sum(p.count(TEXT_PLACEHOLDER) for p in parts)
        if count != 1:
            raise ValueError(f"the prompt must contain the placeholder {TEXT_PLACEHOLDER} exactly once (found {count})")
        if self.messages is not None and self.messages[-1].role != "user":
            raise ValueError("the last chat message must be the user's (the model answers next)")
        return self

    def render(self, text: str) -> str | list[dict]:
        """The prompt for one row. Plain replacement, not str.format: braces in text are data."""
        if self.template is not None:
            return self.template.replace(TEXT_PLACEHOLDER, text)
        return [{"role": m.role, "content": m.content.replace(TEXT_PLACEHOLDER, text)} for m in self.messages]


class PromptError(ScorerError):
    """The task's prompt cannot be used with this tokenizer."""


@dataclass(frozen=True)
class EncodedPrompts:
    ids: list[list[int]]
    truncated: list[bool]


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PromptBuilder:
    """Renders and tokenizes one task's prompt for one tokenizer."""

    def __init__(self, tokenizer, prompt: PromptSpec):
        self.tokenizer = tokenizer
        self.spec = prompt
        self.is_chat = prompt.messages is not None
        self.max_text_tokens = prompt.max_input_tokens
        self.truncation_side = prompt.truncation_side
        self._add_special = not self.is_chat
        self._special_ids = frozenset(
            i for i, tok in tokenizer.added_tokens_decoder.items() if getattr(tok, "special", True)
        ) | frozenset(tokenizer.all_special_ids)
        self.head_ids, self.tail_ids = self._added_by_post_processor()
        self.before, self.after = self._split_around_text()
        self._concat = self._renders_by_concatenation()
        self.shared_prefix_ids: list[int] = self._find_shared_prefix()

    # -- rendering ---------------------------------------------------------------------------
    def _render_template(self, text: str) -> str:
        if not self.is_chat:
            return self.spec.render(text)
        try:
            return self.tokenizer.apply_chat_template(
                self.spec.render(text), tokenize=False, add_generation_prompt=True
            )
        except (ValueError, TypeError) as exc:  # no chat template, or a template error
            raise PromptError(f"cannot render the chat prompt with this tokenizer: {exc}") from exc

    def _split_around_text(self) -> tuple[str, str]:
        rendered = self._render_template(_SENTINEL)
        if rendered.count(_SENTINEL) != 1:
            raise PromptError("the rendered prompt does not contain the text exactly once")
        before, after = rendered.split(_SENTINEL)
        return before, after

    def _renders_by_concatenation(self) -> bool:
        """True when rendering a text is exactly before + text + after (no trimming or escaping)."""
        if not self.is_chat:
            return True
        return all(self._render_template(p) == self.before + p + self.after for p in _RENDER_PROBES)

    def render(self, text: str) -> str:
        """The full prompt string for one (already truncated) text."""
        if self._concat:
            return self.before + text + self.after
        rendered = self._render_template(text)
        if not (rendered.startswith(self.before) and rendered.endswith(self.after)):
            raise PromptError("the chat template changes the prompt around the text; cannot locate the text")
        return rendered

    # -- tokenizing --------------------------------------------------------------------------
    def _added_by_post_processor(self) -> tuple[list[int], list[int]]:
        """Token ids the tokenizer adds before / after a raw prompt (BOS, ...)."""
        if self.is_chat:
            return [], []
        plain = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        for i in range(len(full) - len(plain) + 1):
            if full[i : i + len(plain)] == plain:
                return full[:i], full[i + len(plain) :]
        return [], []

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a full prompt string, tokenized the way the rows are (special strings parsed)."""
        return self.tokenizer(prompt, add_special_tokens=self._add_special)["input_ids"]

    def _split_encode(self, text: str) -> list[int]:
        """Tokenize a rendered prompt piecewise: the template's special tokens parsed, the text's not."""
        tok = self.tokenizer
        before, after = self.before, self.after
        enc_b = tok(before, add_special_tokens=False, return_offsets_mapping=True)
        cut_b = 0
        for i, (s, e) in zip(enc_b["input_ids"], enc_b["offset_mapping"]):
            if i in self._special_ids:
                cut_b = e
        enc_a = tok(after, add_special_tokens=False, return_offsets_mapping=True)
        cut_a = len(after)
        for i, (s, e) in zip(enc_a["input_ids"], enc_a["offset_mapping"]):
            if i in self._special_ids:
                cut_a = s
                break
        middle = before[cut_b:] + text + after[:cut_a]
        ids = list(self.head_ids)
        ids += tok(before[:cut_b], add_special_tokens=False)["input_ids"] if cut_b else []
        ids += tok(middle, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        ids += tok(after[cut_a:], add_special_tokens=False)["input_ids"] if cut_a < len(after) else []
        return ids + list(self.tail_ids)

    def truncate(self, texts: Sequence[str]) -> tuple[list[str], list[bool]]:
        """Cut each text to at most max_input_tokens tokens on the configured side.

        A huge text is first cut to CHARS_PER_TOKEN_CAP characters per allowed token, so a
        10 MB row costs no minutes of tokenizing; the exact cut is then made in tokens.
        """
        limit = self.max_text_tokens
        chars = limit * CHARS_PER_TOKEN_CAP
        flags = [len(t) > chars for t in texts]
        out = [t if not cut else (t[:chars] if self.truncation_side == "right" else t[-chars:])
               for t, cut in zip(texts, flags)]
        # A token covers at least one byte, so texts this short never need the tokenizer.
        long_rows = [i for i, t in enumerate(out) if len(t.encode("utf-8")) + 1 > limit]
        if not long_rows:
            return out, flags
        enc = self.tokenizer(
            [out[i] for i in long_rows],
            add_special_tokens=False,
            split_special_tokens=True,
            return_offsets_mapping=True,
        )
        for i, offsets in zip(long_rows, enc["offset_mapping"]):
            if len(offsets) <= limit:
                continue
            text = out[i]
            if self.truncation_side == "right":
                out[i] = text[: offsets[limit - 1][1]]
            else:
                out[i] = text[offsets[len(offsets) - limit][0] :]
            flags[i] = True
        return out, flags

    def encode(self, texts: Sequence[str]) -> EncodedPrompts:
        """Token ids of each row's full prompt (text truncated, special strings in the text kept plain)."""
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(
                    f"row {i}: text must be a string, got {type(t).__name__} (quarantine null text before scoring)"
                )
        cut, truncated = self.truncate(texts)
        prompts = [self.render(t) for t in cut]
        if not prompts:
            return EncodedPrompts([], [])
        enc = self.tokenizer(prompts, add_special_tokens=self._add_special, return_offsets_mapping=True)
        ids_out: list[list[int]] = []
        start = len(self.before)
        for text, prompt, ids, offsets in zip(cut, prompts, enc["input_ids"], enc["offset_mapping"]):
            end = len(prompt) - len(self.after)
            leaked = any(
                tid in self._special_ids and s < end and e > start and e > s
                for tid, (s, e) in zip(ids, offsets)
            )
            if leaked:
                ids = self._split_encode(prompt[start:end])
            ids_out.append(list(ids))
        return EncodedPrompts(ids_out, truncated)

    # -- shared prefix -----------------------------------------------------------------------
    def _find_shared_prefix(self) -> list[int]:
        """The token ids every prompt starts with, whatever the text: the LCP over probe texts."""
        seqs = self.encode(list(_PREFIX_PROBES)).ids
        n = min(len(s) for s in seqs)
        for s in seqs[1:]:
            n = min(n, _lcp(seqs[0], s))
        return list(seqs[0][:n])

    def context(self, probe: str = "x") -> tuple[str, list[int]]:
        """The prompt up to the answer cue, as text and ids, for resolving answer tokens."""
        return self.render(probe), self.encode([probe]).ids[0]

