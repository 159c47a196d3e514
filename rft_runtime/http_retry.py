"""One retry policy for every HTTP call the jobs make (the sampler or a teacher, an LLM
judge): which answers are worth another try, and how long to wait before it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

# Timeouts, conflicts, rate limits and server errors pass; other answers will not change.
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


def backoff(attempt: int, response: httpx.Response | None = None) -> float:
    """Seconds before retry `attempt` + 1: a numeric Retry-After when the server sends one,
    else exponential (0.5, 1, 2, 4 ... seconds), capped."""
    if response is not None:
        retry_after = response.headers.get("retry-after", "")
        if retry_after.replace(".", "", 1).isdigit():
            return min(float(retry_after), MAX_BACKOFF_SECONDS)
    return float(min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2.0**attempt))


class Retries:
    """The attempts of one request (1 + `retries`) and what the last one got.

    for attempt in retries: send; on an exception `failed(exc)`, on an answer other than
    success `answered(response)` and give up unless `retryable`; then sleep `pause(attempt)`
    seconds when it is not None.
    """

    def __init__(self, retries: int, text_chars: int = 300) -> None:
        self.retries = retries
        self.text_chars = text_chars
        self.last = "no attempt"
        self.response: httpx.Response | None = None

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.retries + 1))

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def failed(self, exc: httpx.HTTPError) -> None:
        self.response = None
        self.last = f"{type(exc).__name__}: {exc}"

    def answered(self, response: httpx.Response) -> None:
        self.response = response
        self.last = f"HTTP {response.status_code}: {response.text[: self.text_chars]}"

    @property
    def retryable(self) -> bool:
        return self.response is None or self.response.status_code in RETRY_STATUS

    def pause(self, attempt: int) -> float | None:
        """Seconds to wait before the next attempt; None after the last one."""
        return backoff(attempt, self.response) if attempt < self.retries else None
