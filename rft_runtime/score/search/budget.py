"""Per-prompt budget accounting: generated tokens and completions, never exceeded.

A request reserves its worst case (n choices x max_tokens) before it is sent and settles
with what the server reports, so requests in flight together cannot overshoot either limit.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_STEP_TOKENS = 8  # fewer tokens per choice than this buy nothing useful


@dataclass(frozen=True)
class Grant:
    n: int
    max_tokens: int


@dataclass
class Budget:
    tokens: int | None = None  # limit on generated tokens (None: unlimited)
    completions: int | None = None  # limit on returned continuations
    used_tokens: int = 0
    used_completions: int = 0
    _held_tokens: int = 0
    _held_completions: int = 0

    def _free_tokens(self) -> int | None:
        if self.tokens is None:
            return None
        return self.tokens - self.used_tokens - self._held_tokens

    def _free_completions(self) -> int | None:
        if self.completions is None:
            return None
        return self.completions - self.used_completions - self._held_completions

    def share(self, choices: int, max_tokens: int, spare_tokens: int = 0) -> int:
        """Tokens per choice when `choices` choices split what is left (after `spare_tokens`)
        evenly, at most `max_tokens`: a wave of steps gives every parent its turn."""
        tokens = self._free_tokens()
        if tokens is None:
            return max_tokens
        return max(0, min(max_tokens, (tokens - spare_tokens) // max(choices, 1)))

    def reserve(
        self, n: int, max_tokens: int, spare_tokens: int = 0, spare_completions: int = 0
    ) -> Grant | None:
        """At most `n` choices of at most `max_tokens` each, shrunk to what is left beyond
        the spares (kept for later work); None when not one choice of a useful length fits."""
        completions = self._free_completions()
        if completions is not None:
            n = min(n, completions - spare_completions)
        tokens = self._free_tokens()
        if tokens is not None:
            tokens -= spare_tokens
            floor = min(max_tokens, MIN_STEP_TOKENS)
            n = min(n, tokens // max(floor, 1))
            if n >= 1:
                max_tokens = min(max_tokens, tokens // n)
        if n < 1 or max_tokens < 1:
            return None
        self._held_tokens += n * max_tokens
        self._held_completions += n
        return Grant(n, max_tokens)

    def settle(self, grant: Grant, tokens: int, completions: int) -> None:
        """Release the reservation and charge what the server says it generated."""
        self._held_tokens -= grant.n * grant.max_tokens
        self._held_completions -= grant.n
        self.used_tokens += tokens
        self.used_completions += completions

    def split(self, parts: int) -> list[Budget]:
        """`parts` independent budgets that together stay within this one (DVTS)."""
        share_t = None if self.tokens is None else (self.tokens - self.used_tokens) // parts
        share_c = (
            None
            if self.completions is None
            else (self.completions - self.used_completions) // parts
        )
        return [Budget(share_t, share_c) for _ in range(parts)]

    def absorb(self, parts: list[Budget]) -> None:
        """Charge what the split budgets spent to this one."""
        self.used_tokens += sum(p.used_tokens for p in parts)
        self.used_completions += sum(p.used_completions for p in parts)
