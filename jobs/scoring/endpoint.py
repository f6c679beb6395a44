"""One task's requests to an OpenAI-compatible endpoint: prompts in, first-token top lists or sampled answers out.

    endpoint = Endpoint(config, prompt, identity)          # identity: served_identity(config)
    tops, n_tokens = endpoint.first_token(texts, top=20)   # per row: [(token text, logprob), ...] or RowFailure
    answers = endpoint.sample(texts, n=10)                 # per row: n answer texts, or RowFailure

`completions` sends the task's raw `template`; `chat` sends its `messages` (the
server applies its own chat template). The endpoint has no tokenizer here, so a text
is cut only where it could not fit in any case (`max_input_tokens` x the longest
token, as `PromptBuilder.truncate` does first); a prompt the server finds too long is
rejected by it and that row is quarantined. Prompt tokens are the server's count.

**Served model identity.** `served_identity` asks the server which model it serves
(the `/models` entry, without fields that change per request such as `created`) and
sends one probe request to read the model name the answers carry (hosted APIs answer
`gpt-x` with a dated snapshot). Both go into `task_version`; every later answer must
carry the same model name, so a server that swaps its model mid-run fails the batch
instead of mixing two models' scores under one version.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from calscore.jobs.scoring.embedded_model import cache_root
from calscore.jobs.scoring.endpoint_client import ClientSettings, EndpointClient, RowFailure
from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.prompting import CHARS_PER_TOKEN_CAP, PromptSpec
from calscore.jobs.scoring.response_cache import ResponseCache

# `/models` fields that change from request to request (vLLM stamps `created` with the current time).
_VOLATILE_MODEL_FIELDS = frozenset({"created", "permission", "permissions"})
_IDENTITIES: dict[str, dict[str, Any]] = {}
TopList = list[tuple[str, float]]


def api_key(config) -> str | None:
    if config.api_key_env is None:
        return None
    key = os.environ.get(config.api_key_env)
    if not key:
        raise ScorerError(f"[model] api_key_env names {config.api_key_env!r}, but that environment variable is not set")
    return key


def client_settings(config) -> ClientSettings:
    return ClientSettings(
        base_url=config.base_url, api_key=api_key(config), timeout_seconds=config.timeout_seconds,
        max_concurrency=config.max_concurrency, requests_per_second=config.requests_per_second,
        max_attempts=config.max_attempts, retry_budget_seconds=config.retry_budget_seconds,
    )


def _probe_body(config) -> dict[str, Any]:
    if config.endpoint == "chat":
        return {"model": config.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    return {"model": config.model, "prompt": "Hi", "max_tokens": 1}


def served_identity(config) -> dict[str, Any]:
    """What the server says it serves under `config.model`; resolved once per process and endpoint."""
    memo = json.dumps([config.base_url, config.model, config.endpoint, config.api_key_env])
    if memo not in _IDENTITIES:
        client = EndpointClient(client_settings(config), cache=None, identity={})
        listed = client.get("/models").get("data") or []
        entry = next((m for m in listed if m.get("id") == config.model), None)
        if entry is None:
            raise ScorerError(f"{config.base_url} serves no model {config.model!r}; it lists "
                              f"{sorted(str(m.get('id')) for m in listed)}")
        probe = client.post_many(_path(config), [_probe_body(config)])[0]
        if isinstance(probe, RowFailure):
            raise ScorerError(f"{config.base_url} rejected a one-token probe for {config.model!r}: {probe.message}")
        _IDENTITIES[memo] = {
            "listed": {k: v for k, v in sorted(entry.items()) if k not in _VOLATILE_MODEL_FIELDS},
            "answers_as": probe.get("model"),
        }
    return _IDENTITIES[memo]


def _path(config) -> str:
    return "/chat/completions" if config.endpoint == "chat" else "/completions"


class Endpoint:
    def __init__(self, config, prompt: PromptSpec, identity: Mapping[str, Any], *, cache_path=None):
        if config.endpoint == "completions" and prompt.template is None:
            raise ScorerError("endpoint = \"completions\" sends a raw prompt: give [prompt] template, "
                              "or use endpoint = \"chat\" for [[prompt.messages]]")
        if config.endpoint == "chat" and prompt.messages is None:
            raise ScorerError("endpoint = \"chat\" sends chat messages: give [[prompt.messages]], "
                              "or use endpoint = \"completions\" for a raw template")
        self.config = config
        self.prompt = prompt
        self.identity = dict(identity)
        cache = None
        if config.response_cache:
            cache = ResponseCache(cache_path or cache_root() / "endpoint-responses.sqlite")
        self.client = EndpointClient(client_settings(config), cache, self.identity)
        self.path = _path(config)
        self.max_chars = prompt.max_input_tokens * CHARS_PER_TOKEN_CAP

    # -- requests -------------------------------------------------------------------------------
    def _cut(self, text: str) -> tuple[str, bool]:
        if len(text) <= self.max_chars:
            return text, False
        keep = text[: self.max_chars] if self.prompt.truncation_side == "right" else text[-self.max_chars:]
        return keep, True

    def _body(self, text: str, **params: Any) -> dict[str, Any]:
        rendered = self.prompt.render(text)
        key = "messages" if self.config.endpoint == "chat" else "prompt"
        return {"model": self.config.model, key: rendered, **self.config.extra_body, **params}

    def answer_context(self) -> str:
        """What the answer follows: the raw prompt's end, or the start of an assistant message (chat)."""
        return self.prompt.template.split("{text}")[-1] if self.config.endpoint == "completions" else ""

    def _checked(self, response: dict | RowFailure) -> dict | RowFailure:
        if isinstance(response, RowFailure):
            return response
        expected = self.identity.get("answers_as")
        if expected is not None and response.get("model") != expected:
            raise ScorerError(
                f"{self.config.base_url} now answers as model {response.get('model')!r}, but this task_version was "
                f"computed for {expected!r}: the server changed its model; reload the task to score under the new "
                "version (its calibrators do not carry over)")
        return response

    def first_token(self, texts: Sequence[str], top: int) -> tuple[list[TopList | RowFailure], list[int | None], list[bool]]:
        """The top first tokens per row, the server's prompt-token counts, and which texts were cut."""
        cut = [self._cut(t) for t in texts]
        if self.config.endpoint == "chat":
            params = {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": top}
        else:
            params = {"max_tokens": 1, "temperature": 0.0, "logprobs": top}
        responses = [self._checked(r) for r in self.client.post_many(self.path, [self._body(t, **params) for t, _ in cut])]
        tops = [r if isinstance(r, RowFailure) else self._top_list(r) for r in responses]
        n_tokens = [None if isinstance(r, RowFailure) else (r.get("usage") or {}).get("prompt_tokens")
                    for r in responses]
        return tops, n_tokens, [c for _, c in cut]

    def _top_list(self, response: dict) -> TopList:
        logprobs = (response.get("choices") or [{}])[0].get("logprobs")
        try:
            if self.config.endpoint == "chat":
                first = logprobs["content"][0]["top_logprobs"]
                return [(str(t["token"]), float(t["logprob"])) for t in first]
            return [(str(tok), float(lp)) for tok, lp in logprobs["top_logprobs"][0].items()]
        except (TypeError, KeyError, IndexError) as exc:
            raise ScorerError(
                f"{self.config.base_url} answered without first-token log-probabilities ({type(exc).__name__}: "
                f"{exc}); this server or model does not return them -- use method = \"consistency\"") from None

    def sample(self, texts: Sequence[str], n: int, temperature: float, max_tokens: int, seed: int) -> list[list[str] | RowFailure]:
        """`n` answers per row at `temperature` (request i of a row carries seed + i, so a re-run asks the
        same questions and hits the cache); a row with any failed sample is a RowFailure."""
        bodies = [self._body(self._cut(t)[0], max_tokens=max_tokens, temperature=temperature, seed=seed + i)
                  for t in texts for i in range(n)]
        responses = [self._checked(r) for r in self.client.post_many(self.path, bodies)]
        out: list[list[str] | RowFailure] = []
        for row in range(len(texts)):
            chunk = responses[row * n:(row + 1) * n]
            failed = next((r for r in chunk if isinstance(r, RowFailure)), None)
            out.append(failed if failed is not None else [self._answer_text(r) for r in chunk])
        return out

    def _answer_text(self, response: dict) -> str:
        choice = (response.get("choices") or [{}])[0]
        if self.config.endpoint == "chat":
            return str((choice.get("message") or {}).get("content") or "")
        return str(choice.get("text") or "")
