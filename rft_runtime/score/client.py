"""An OpenAI-compatible endpoint over httpx: readiness wait, timeouts, retries with backoff.

httpx directly (not the openai SDK) keeps the per-request overhead low, which matters when
the scoring Job shares a small machine with the sampler.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..config.jobs import Endpoint
from ..http_retry import Retries

PER_PROMPT_STATUS = {400, 413, 422}  # this prompt is at fault (e.g. too long), not the setup


class EndpointUnreachable(Exception):
    """The endpoint never answered, or stopped answering past every retry."""


class EndpointRejected(Exception):
    """The endpoint refuses every request (wrong model name, bad key): a setup error."""


class MissingApiKey(Exception):
    """`apiKeyEnv` names an environment variable that is not set."""


class RequestRejected(Exception):
    """The endpoint rejected this one prompt (e.g. it is too long); others may pass."""


@dataclass
class Generation:
    texts: list[str]
    finish_reasons: list[str | None]
    completion_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


TOKEN_ID_PREFIX = "token_id:"  # vLLM's token names with return_tokens_as_token_ids


def sampled_tokens(choice: dict[str, Any]) -> tuple[list[int], list[float]] | None:
    """The sampled token ids and their log-probabilities, when the request asked vLLM for
    logprobs with `return_tokens_as_token_ids` (chat or completions shape); else None."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    if isinstance(logprobs.get("content"), list):  # chat
        names = [entry.get("token") for entry in logprobs["content"]]
        values = [entry.get("logprob") for entry in logprobs["content"]]
    else:  # completions
        names, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    if len(names) != len(values):
        return None
    ids: list[int] = []
    for name in names:
        if not isinstance(name, str) or not name.startswith(TOKEN_ID_PREFIX):
            return None
        ids.append(int(name[len(TOKEN_ID_PREFIX) :]))
    return ids, [float(v) if v is not None else float("nan") for v in values]


def parse_response(path: str, payload: dict[str, Any]) -> Generation:
    """Texts in choice order, whichever API shape answered (and the sampled tokens with
    their log-probabilities in `extra["tokens"]`, one entry per choice, when asked for)."""
    choices = sorted(payload.get("choices") or [], key=lambda c: c.get("index", 0))
    if path.startswith("chat"):
        texts = [(c.get("message") or {}).get("content") or "" for c in choices]
    else:
        texts = [c.get("text") or "" for c in choices]
    usage = payload.get("usage") or {}
    generation = Generation(
        texts,
        [c.get("finish_reason") for c in choices],
        int(usage.get("completion_tokens") or 0),
    )
    tokens = [sampled_tokens(c) for c in choices]
    if choices and all(t is not None for t in tokens):
        generation.extra["tokens"] = tokens
    return generation


class EndpointClient:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.base_url = endpoint.base_url.rstrip("/")
        headers = {}
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env)
            if not key:
                raise MissingApiKey(
                    f"environment variable {endpoint.api_key_env} (apiKeyEnv) is empty; "
                    "mount the API key Secret into the scoring pod"
                )
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=endpoint.concurrency + 4)
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(endpoint.timeout_seconds, connect=10.0),
            limits=limits,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def wait_ready(self, poll_seconds: float = 1.0) -> float:
        """Poll `/v1/models` until it answers 200; seconds waited. Raises past the deadline."""
        start = time.monotonic()
        deadline = start + self.endpoint.startup_wait_seconds
        last = "no attempt"
        while True:
            try:
                response = await self._http.get(f"{self.base_url}/models", timeout=10.0)
                if response.status_code == 200:
                    return time.monotonic() - start
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise EndpointUnreachable(
                    f"{self.base_url} did not answer within {self.endpoint.startup_wait_seconds:g}s"
                    f" (last: {last}); check the sampler/teacher URL or raise startupWaitSeconds"
                )
            await asyncio.sleep(min(poll_seconds, max(0.0, deadline - time.monotonic())))

    async def generate(self, path: str, body: dict[str, Any]) -> Generation:
        """POST with retries on connection errors, timeouts and 429/5xx."""
        retries = Retries(self.endpoint.max_retries, text_chars=300)
        for attempt in retries:
            try:
                response = await self._http.post(f"{self.base_url}/{path}", json=body)
            except httpx.HTTPError as exc:
                retries.failed(exc)
            else:
                if response.status_code == 200:
                    return parse_response(path, response.json())
                retries.answered(response)
                if response.status_code in PER_PROMPT_STATUS:
                    raise RequestRejected(retries.last)
                if not retries.retryable:
                    raise EndpointRejected(
                        f"{self.base_url}/{path} answered {retries.last}; check the endpoint's "
                        "model name and API key"
                    )
            pause = retries.pause(attempt)
            if pause is not None:
                await asyncio.sleep(pause)
        raise EndpointUnreachable(
            f"{self.base_url}/{path} failed after {retries.attempts} attempts "
            f"({retries.last}); raise maxRetries/timeoutSeconds or check the endpoint"
        )
