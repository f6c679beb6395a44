"""An HTTP client for OpenAI-compatible endpoints that a nightly batch can lean on.

    client = EndpointClient(settings, cache=ResponseCache(path), identity={"model": ...})
    results = client.post_many("/completions", bodies)     # one dict or RowFailure per body, in order
    client.usage                                           # requests, cache hits, retries, tokens paid

- **Bounded.** At most `max_concurrency` requests in flight (asyncio + httpx), and at
  most `requests_per_second` started per second (aiolimiter's leaky bucket).
- **Retries** (tenacity): timeouts, connection errors, 429 and 5xx are retried with
  exponential backoff and full jitter, each wait at least the server's `Retry-After`;
  other 4xx (a request the server rejects) never are -- sending it again cannot help.
- **Failures.** A request rejected with a 4xx, or still answered 429/5xx when its
  retry budget is spent, is that row's failure (`RowFailure`, quarantined by the
  batch); the rest of the batch goes on. An endpoint that cannot be reached at all
  (connection errors and timeouts outlast the budget), or that failed every request of
  a call, raises `EndpointUnavailable`: the batch fails with the reason, and the
  responses that did arrive stay in the cache for the re-run.
- **Cache.** Every response is stored as it arrives (`response_cache`), keyed by the
  endpoint, the served model's identity and the request body.
"""
from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay,
                      wait_exception, wait_exponential_jitter)

from calscore.jobs.scoring.errors import ScorerError
from calscore.jobs.scoring.response_cache import ResponseCache


class EndpointUnavailable(ScorerError):
    """The endpoint could not be reached, or failed every request, within the retry budget."""


@dataclass(frozen=True)
class RowFailure:
    """Why one request failed for good (its row is quarantined, the batch goes on)."""

    message: str
    exhausted: bool  # True: retried until the budget ran out (429/5xx); False: rejected (4xx), never retried


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    api_key: str | None = None
    timeout_seconds: float = 60.0
    max_concurrency: int = 4
    requests_per_second: float | None = None
    max_attempts: int = 6
    retry_budget_seconds: float = 120.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0


@dataclass
class Usage:
    """What a client has spent: requests sent, answered from the cache, retried, failed; tokens paid."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    row_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fingerprints: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in vars(self).items() if k != "fingerprints"},
                "system_fingerprints": sorted(self.fingerprints)}


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


def retry_after_seconds(exc: BaseException) -> float:
    """The server's Retry-After (seconds or an HTTP date), 0 when it gave none."""
    if not isinstance(exc, httpx.HTTPStatusError):
        return 0.0
    value = exc.response.headers.get("retry-after")
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else 0.0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}: {exc.response.text[:300]}"
    return f"{type(exc).__name__}: {exc}"


class EndpointClient:
    def __init__(self, settings: ClientSettings, cache: ResponseCache | None, identity: Mapping[str, Any]):
        self.settings = settings
        self.cache = cache
        self.identity = dict(identity)
        self.usage = Usage()
        self._headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}

    def _policy(self) -> dict[str, Any]:
        s = self.settings
        return {
            "retry": retry_if_exception(retryable),
            # the sum waits at least Retry-After, plus the jittered backoff
            "wait": wait_exponential_jitter(multiplier=s.backoff_initial_seconds, max=s.backoff_max_seconds,
                                            jitter=s.backoff_initial_seconds) + wait_exception(retry_after_seconds),
            "stop": stop_after_attempt(s.max_attempts) | stop_after_delay(s.retry_budget_seconds),
            "before_sleep": self._count_retry,
            "reraise": True,
        }

    def _count_retry(self, _state) -> None:
        self.usage.retries += 1

    def _url(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path

    def get(self, path: str) -> dict:
        """A GET with the same retry policy (the model list); raises EndpointUnavailable when it fails."""
        try:
            with httpx.Client(timeout=self.settings.timeout_seconds, headers=self._headers) as http:
                for attempt in Retrying(**self._policy()):
                    with attempt:
                        response = http.get(self._url(path))
                        response.raise_for_status()
                        return response.json()
        except httpx.HTTPError as exc:
            raise EndpointUnavailable(f"{self._url(path)}: {_describe(exc)}") from None

    def post_many(self, path: str, bodies: Sequence[Mapping[str, Any]]) -> list[dict | RowFailure]:
        """POST every body (cached ones are not sent); one response dict or RowFailure per body, in order."""
        return asyncio.run(self._post_all(path, list(bodies)))

    async def _post_all(self, path: str, bodies: list[Mapping[str, Any]]) -> list[dict | RowFailure]:
        s = self.settings
        url = self._url(path)
        results: list[dict | RowFailure | None] = [None] * len(bodies)
        todo = []
        for i, body in enumerate(bodies):
            key = ResponseCache.key(url, self.identity, body)
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                self.usage.cache_hits += 1
                results[i] = cached
            else:
                todo.append((i, key, body))
        if not todo:
            return results
        # aiolimiter: a bucket of one request refilled every 1/rps seconds, so no burst at the start
        limiter = AsyncLimiter(1, 1.0 / s.requests_per_second) if s.requests_per_second else None
        gate = asyncio.Semaphore(s.max_concurrency)
        limits = httpx.Limits(max_connections=s.max_concurrency, max_keepalive_connections=s.max_concurrency)
        async with httpx.AsyncClient(timeout=s.timeout_seconds, headers=self._headers, limits=limits) as http:

            async def one(i: int, key: str, body: Mapping[str, Any]) -> None:
                async with gate:
                    results[i] = await self._post_one(http, limiter, url, key, body)

            try:
                async with asyncio.TaskGroup() as group:  # the first EndpointUnavailable cancels the rest
                    for item in todo:
                        group.create_task(one(*item))
            except* EndpointUnavailable as group_error:
                raise group_error.exceptions[0] from None
        sent = [results[i] for i, _, _ in todo]
        if all(isinstance(r, RowFailure) for r in sent) and any(r.exhausted for r in sent):
            raise EndpointUnavailable(f"{url} failed all {len(sent)} request(s) of this batch; last: {sent[-1].message}")
        return results

    async def _post_one(self, http: httpx.AsyncClient, limiter: AsyncLimiter | None, url: str, key: str,
                        body: Mapping[str, Any]) -> dict | RowFailure:
        try:
            async for attempt in AsyncRetrying(**self._policy()):
                with attempt:
                    if limiter is not None:
                        await limiter.acquire()
                    self.usage.requests += 1
                    response = await http.post(url, json=body)
                    response.raise_for_status()
                    data = response.json()
        except httpx.HTTPStatusError as exc:
            self.usage.row_failures += 1
            exhausted = retryable(exc)
            prefix = "gave up after retries: " if exhausted else "rejected: "
            return RowFailure(prefix + _describe(exc), exhausted)
        except httpx.TransportError as exc:
            raise EndpointUnavailable(
                f"{url} cannot be reached ({type(exc).__name__}: {exc}) after {self.settings.max_attempts} attempts "
                f"or {self.settings.retry_budget_seconds:g} s; the responses already received are cached for the re-run"
            ) from None
        usage = data.get("usage") or {}
        self.usage.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.usage.completion_tokens += int(usage.get("completion_tokens") or 0)
        if data.get("system_fingerprint"):
            self.usage.fingerprints.add(str(data["system_fingerprint"]))
        if self.cache is not None:
            self.cache.put(key, data)
        return data
