"""Consistency: ask the same question N times at temperature > 0 and take the agreement rate.

For models that give no log-probabilities (many hosted APIs). Each sampled answer is
parsed to a label by its first word, case and punctuation folded ("Positive." and
" positive!" are `positive`); an answer whose first word is no label's variant is
off-format. With counts c_k of N and a pseudo-count a, the label probabilities are
p_k = (c_k + a) / (N + a (K + 1)) (`calibration_store.combined.agreement_logprobs`), so
coverage is the parsed share, smoothed; the raw rates c_k / N are stored as
`agreement` and N as `samples` with every row.

Samplers: `EndpointSampler` (an OpenAI-compatible endpoint: `method = "consistency"`
in its `[model]`) and the local engine's (`backends.local_sampling`). At temperature 1
with pure sampling, c_k / N converges to the first-token probability of the label's
one-token variants as N grows (tests/test_consistency.py measures it on the demo model).
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from calscore.calibration_store.combined import agreement_logprobs
from calscore.jobs.scoring.endpoint import Endpoint
from calscore.jobs.scoring.endpoint_client import RowFailure
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.explain import Explanation, LabelRow
from calscore.jobs.scoring.schema import score_table, with_row_errors

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def first_word(text: str) -> str | None:
    """The first run of letters/digits, case-folded; None when there is none."""
    match = _WORD.search(text)
    return match.group(0).casefold() if match else None


class AnswerParser:
    """Maps an answer's first word to a label; variants that fold to the same word for two labels are an error."""

    def __init__(self, labels: Mapping[str, Sequence[str]]):
        self.labels = tuple(labels)
        self.words: dict[str, int] = {}
        for j, label in enumerate(self.labels):
            for variant in labels[label]:
                word = first_word(variant)
                if word is None:
                    raise ScorerError(f"label {label!r}: variant {variant!r} has no word to match an answer by")
                if self.words.setdefault(word, j) != j:
                    raise ScorerError(f"variant {variant!r} of {label!r} and a variant of "
                                      f"{self.labels[self.words[word]]!r} both start with the word {word!r}")

    def settled(self, text: str) -> bool:
        """True once more text cannot change how an answer parses: its first word is complete, or it
        starts a word no variant starts with (off-format whatever follows). Lets a sampler stop early."""
        match = _WORD.search(text)
        if match is None:
            return False
        word = match.group(0).casefold()
        return match.end() < len(text) or not any(w.startswith(word) for w in self.words)

    def counts(self, answers: Sequence[str]) -> np.ndarray:
        """(K,) answers per label; unparseable answers count for none."""
        out = np.zeros(len(self.labels))
        for answer in answers:
            j = self.words.get(first_word(answer) or "")
            if j is not None:
                out[j] += 1
        return out


class Sampler(Protocol):
    def sample(self, texts: Sequence[str], n: int) -> list[list[str] | RowFailure]: ...

    def describe(self) -> dict[str, Any]: ...


class EndpointSampler:
    """N answers per row from an OpenAI-compatible endpoint (seeded requests, cached)."""

    def __init__(self, endpoint: Endpoint, config):
        self.endpoint = endpoint
        self.temperature, self.max_tokens, self.seed = config.temperature, config.max_tokens, config.seed

    def sample(self, texts: Sequence[str], n: int) -> list[list[str] | RowFailure]:
        return self.endpoint.sample(texts, n, self.temperature, self.max_tokens, self.seed)

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai_compatible", "model": self.endpoint.config.describe(),
                "usage": self.endpoint.client.usage.as_dict()}


class ConsistencyScorer:
    """Label probabilities from the agreement of N sampled answers (a `Scorer`)."""

    def __init__(self, sampler: Sampler, labels: Mapping[str, Sequence[str]], samples: int, smoothing: float,
                 version_parts: Mapping[str, Any]):
        self.sampler = sampler
        self.parser = AnswerParser(labels)
        self.labels = self.parser.labels
        self.samples = int(samples)
        self.smoothing = float(smoothing)
        self.version_parts = dict(version_parts)

    def agreement(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str | None]]:
        """(n, K) agreement rates c_k / N (NaN rows for failed rows) and each row's error or None."""
        answers = self.sampler.sample(texts, self.samples)
        rates = np.full((len(texts), len(self.labels)), np.nan)
        errors: list[str | None] = []
        for i, got in enumerate(answers):
            if isinstance(got, RowFailure):
                errors.append(got.message)
            else:
                rates[i] = self.parser.counts(got) / self.samples
                errors.append(None)
        return rates, errors

    def score(self, texts: Sequence[str]):
        rates, errors = self.agreement(texts)
        ok = np.array([e is None for e in errors], dtype=bool)
        n_ok = int(ok.sum())
        lp = agreement_logprobs(rates[ok], np.full(n_ok, self.samples), self.smoothing)
        table = score_table(lp, self.labels, [False] * n_ok, [None] * n_ok, agreement=rates[ok],
                            samples=[self.samples] * n_ok)
        return with_row_errors(table, errors)

    def explain(self, text: str, top_k: int = 10) -> Explanation:
        rates, errors = self.agreement([text])
        if errors[0] is not None:
            raise ScorerError(f"the endpoint could not score this text: {errors[0]}")
        lp = agreement_logprobs(rates, np.array([self.samples]), self.smoothing)[0]
        best = int(np.argmax(lp))
        counts = np.rint(rates[0] * self.samples).astype(int)
        return Explanation(
            text=text, n_tokens=None, truncated=False, top_tokens=[],
            labels=[LabelRow(label, [], float(v)) for label, v in zip(self.labels, lp)],
            prediction=self.labels[best], raw_confidence=float(np.exp(lp[best] - np.logaddexp.reduce(lp))),
            coverage=float(np.exp(np.logaddexp.reduce(lp))),
            notes=[f"consistency: {self.samples} sampled answers, counts "
                   + ", ".join(f"{label} {c}" for label, c in zip(self.labels, counts))
                   + f", off-format {self.samples - counts.sum()}; probabilities smoothed with {self.smoothing:g} "
                   "per outcome"],
        )

    def usage(self) -> dict[str, Any]:
        """Requests, cache hits, retries and tokens paid (endpoint samplers; empty for the local engine)."""
        return self.sampler.describe().get("usage", {})

    def describe(self) -> dict[str, Any]:
        return {**self.sampler.describe(), "device": None, "dtype": None, "precision": "as sampled",
                "method": "consistency", "samples": self.samples, "version_parts": self.version_parts}
