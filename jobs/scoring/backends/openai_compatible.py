"""The `openai_compatible` backend: a model behind an OpenAI-compatible HTTP endpoint (vLLM, llama.cpp, a hosted API).

    [model]
    backend = "openai_compatible"
    base_url = "http://127.0.0.1:8000/v1"
    model = "Qwen/Qwen2.5-7B-Instruct"      # the served model's name
    api_key_env = "VLLM_API_KEY"            # the NAME of the variable holding the key, never the key
    endpoint = "completions"                # or "chat" (with [[prompt.messages]])
    method = "logprobs"                     # or "consistency", "combined" (see backends.consistency / .combined)

`method = "logprobs"` asks for one token with its top log-probabilities (servers cap
the list, often at 20) and sums each label's variants among them, matched by token
text in context: after a prompt ending in "Sentiment:" the variant `positive` is the
token " positive" (the rule `verbalizers` applies with a tokenizer). A label none of
whose variants is listed is imputed (`schema.impute_unobserved`: at most the
unreported remainder), named in `unobserved_labels`, and coverage is a lower bound.
"""
from __future__ import annotations

import math
import re
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field, field_validator

from calscore.jobs.common.config import StrictModel
from calscore.jobs.scoring.backends.combined import CombinedScorer
from calscore.jobs.scoring.backends.consistency import ConsistencyScorer, EndpointSampler
from calscore.jobs.scoring.endpoint import Endpoint, TopList, served_identity
from calscore.jobs.scoring.endpoint_client import RowFailure
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.explain import Explanation, LabelRow, TokenRow, VariantRow
from calscore.jobs.scoring.prompting import PromptSpec
from calscore.jobs.scoring.schema import impute_unobserved, score_table, with_row_errors
from calscore.jobs.scoring.verbalizers import _answer_form

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OpenAICompatibleConfig(StrictModel):
    backend: Literal["openai_compatible"]
    base_url: str = Field(description="the API root, e.g. http://127.0.0.1:8000/v1")
    model: str
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    endpoint: Literal["completions", "chat"] = "completions"
    method: Literal["logprobs", "consistency", "combined"] = "logprobs"
    top_logprobs: int = Field(20, ge=1, le=100, description="first tokens asked for (servers cap it, often at 20)")
    # consistency and combined: N answers per row at this temperature, each cut to max_tokens
    samples: int = Field(10, ge=1, le=1000)
    temperature: float = Field(1.0, gt=0.0, le=5.0)
    max_tokens: int = Field(4, ge=1, le=256)
    smoothing: float = Field(0.5, gt=0.0, description="pseudo-count per outcome for agreement probabilities")
    seed: int = 0
    # extra request fields the server understands (e.g. {top_k = 0, min_p = 0} for llama.cpp / vLLM sampling)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # runtime knobs: never part of task_version
    timeout_seconds: float = Field(60.0, gt=0.0)
    max_concurrency: int = Field(4, ge=1, le=256)
    requests_per_second: float | None = Field(None, gt=0.0)
    max_attempts: int = Field(6, ge=1, le=50)
    retry_budget_seconds: float = Field(120.0, gt=0.0)
    response_cache: bool = True

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("give the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://", v):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/")

    def describe(self) -> str:
        return f"{self.base_url}#{self.model}"

    @property
    def sampling(self) -> dict[str, Any]:
        """What changes sampled answers (part of task_version for the sampling methods)."""
        return {"samples": self.samples, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "smoothing": self.smoothing, "seed": self.seed}


def label_masses(tops: Sequence[TopList], answers: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) label log-probabilities and unobserved mask from top lists; `answers[k]` are label k's token texts."""
    n, k = len(tops), len(answers)
    mass = np.full((n, k), np.nan)
    smallest, total = np.ones(n), np.zeros(n)
    for row, top in enumerate(tops):
        probs = [(tok, math.exp(lp)) for tok, lp in top]
        smallest[row] = min((p for _, p in probs), default=1.0)
        total[row] = sum(p for _, p in probs)
        for j, forms in enumerate(answers):
            listed = [p for tok, p in probs if tok in forms]
            if listed:
                mass[row, j] = sum(listed)
    return impute_unobserved(mass, smallest, total)


class EndpointLogprobScorer:
    """First-token label probabilities from an endpoint's top log-probabilities (a `Scorer`)."""

    def __init__(self, endpoint: Endpoint, labels: Mapping[str, Sequence[str]], top: int,
                 version_parts: Mapping[str, Any]):
        self.endpoint = endpoint
        self.labels = tuple(labels)
        self.top = top
        context = endpoint.answer_context()
        # label -> the token texts its variants are, right after the prompt (duplicates counted once)
        self.answers = [tuple(dict.fromkeys(_answer_form(context, v) for v in labels[label])) for label in self.labels]
        self.version_parts = dict(version_parts)

    def score(self, texts: Sequence[str]):
        tops, n_tokens, truncated = self.endpoint.first_token(texts, self.top)
        ok = [i for i, t in enumerate(tops) if not isinstance(t, RowFailure)]
        lp, missing = label_masses([tops[i] for i in ok], self.answers)
        table = score_table(lp, self.labels, [truncated[i] for i in ok], [n_tokens[i] for i in ok], unobserved=missing)
        return with_row_errors(table, [t.message if isinstance(t, RowFailure) else None for t in tops])

    def explain(self, text: str, top_k: int = 10) -> Explanation:
        tops, n_tokens, truncated = self.endpoint.first_token([text], max(top_k, self.top))
        if isinstance(tops[0], RowFailure):
            raise ScorerError(f"the endpoint could not score this text: {tops[0].message}")
        top = sorted(tops[0], key=lambda t: -t[1])
        lp, missing = label_masses([top], self.answers)
        listed = {tok: math.exp(v) for tok, v in top}
        label_rows = [
            LabelRow(label, [VariantRow(form.strip(), form, None, listed.get(form), "ok") for form in forms],
                     float(lp[0, j]), observed=not missing[0, j])
            for j, (label, forms) in enumerate(zip(self.labels, self.answers))
        ]
        total = float(np.logaddexp.reduce(lp[0]))
        best = int(np.argmax(lp[0]))
        return Explanation(
            text=text, n_tokens=n_tokens[0], truncated=truncated[0],
            top_tokens=[TokenRow(tok, None, v) for tok, v in top[:top_k]], labels=label_rows,
            prediction=self.labels[best], raw_confidence=math.exp(lp[0, best] - total),
            coverage=float(np.exp(np.logaddexp.reduce(np.where(missing[0], -np.inf, lp[0])))),
            coverage_is_lower_bound=bool(missing[0].any()),
            notes=[f"endpoint {self.endpoint.config.describe()}: the server listed its top {len(top)} first tokens; "
                   "variants are matched by token text after the prompt"],
        )

    def usage(self) -> dict[str, Any]:
        return self.endpoint.client.usage.as_dict()

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai_compatible", "model": self.endpoint.config.describe(), "device": None,
                "dtype": None, "precision": "as served", "method": "logprobs", "usage": self.usage(),
                "version_parts": self.version_parts}


class OpenAICompatibleBackend:
    name = "openai_compatible"
    config = OpenAICompatibleConfig

    def version_parts(self, config: OpenAICompatibleConfig) -> dict[str, Any]:
        """The endpoint and the model it says it serves, the request form, the method and its parameters."""
        parts = {"backend": self.name, "base_url": config.base_url, "model": config.model,
                 "served": served_identity(config), "endpoint": config.endpoint, "method": config.method,
                 "extra_body": config.extra_body}
        if config.method in ("logprobs", "combined"):
            parts["top_logprobs"] = config.top_logprobs  # a longer list imputes fewer labels
        if config.method in ("consistency", "combined"):
            parts["sampling"] = config.sampling
        return parts

    def provenance(self, config: OpenAICompatibleConfig) -> dict[str, Any]:
        return {"model": config.describe(), "model_fingerprint": served_identity(config), "dtype": None, "device": None}

    def load(self, config: OpenAICompatibleConfig, prompt: PromptSpec, labels: Mapping[str, Sequence[str]], *,
             cache_path=None):
        parts = self.version_parts(config)
        endpoint = Endpoint(config, prompt, parts["served"], cache_path=cache_path)
        if config.method == "logprobs":
            return EndpointLogprobScorer(endpoint, labels, config.top_logprobs, parts)
        consistency = ConsistencyScorer(EndpointSampler(endpoint, config), labels, config.samples, config.smoothing,
                                        parts)
        if config.method == "consistency":
            return consistency
        return CombinedScorer(EndpointLogprobScorer(endpoint, labels, config.top_logprobs, parts), consistency, parts)


OPENAI_COMPATIBLE = OpenAICompatibleBackend()
