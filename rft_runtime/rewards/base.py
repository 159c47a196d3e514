"""What every reward shares: the result type and the guard against unscorable output.

A reward never raises: a completion it cannot judge scores 0 with a reason, so one bad
sample cannot fail a scoring Job that has already paid for thousands of generations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..config.spec import RewardSpec

MAX_COMPLETION_CHARS = 100_000  # beyond this a completion is garbage, not an answer

UNIT = (0.0, 1.0)
"""The range every built-in reward type declares (`RANGES` in `rewards/__init__.py`)."""


@dataclass(frozen=True)
class RewardResult:
    """One reward's value for one completion; `reason` says why it is 0 when it could not judge."""

    value: float
    reason: str | None = None


RewardFn = Callable[[RewardSpec, str, str, str], RewardResult]
"""(spec, prompt, completion, answer) -> result, on clean text."""

SafeRewardFn = Callable[[RewardSpec, object, object, object], RewardResult]
"""The guarded form: takes anything (bytes, None, huge strings) and never raises."""


def zero(reason: str) -> RewardResult:
    return RewardResult(0.0, reason)


def bounded(value: object, low: float, high: float) -> float:
    """The one guard of a reward value: a number inside [low, high]; NaN, a value that is not
    a number, or one that cannot be converted becomes `low`; +-inf and anything outside is
    clamped. Every reward result and every total passes through here."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return low
    if number != number:
        return low
    return min(high, max(low, number))


def fraction(passed: int, total: int) -> float:
    """A pass fraction that never exceeds 1 (nor drops below 0)."""
    if total <= 0:
        return 0.0
    return bounded(min(max(passed, 0), total) / total, 0.0, 1.0)


def as_text(value: object) -> tuple[str | None, str | None]:
    """Decode a completion or answer to clean text, or say why it cannot be scored."""
    if value is None:
        return None, "missing"
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None, "not valid UTF-8"
    if not isinstance(value, str):
        value = str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None, "not valid UTF-8 (lone surrogates)"
    if len(value) > MAX_COMPLETION_CHARS:
        return None, f"too long ({len(value)} chars > {MAX_COMPLETION_CHARS})"
    if "\x00" in value:
        return None, "contains NUL bytes"
    return value, None


def clean_item(
    prompt: object, completion: object, answer: object
) -> tuple[str, str, str] | RewardResult:
    """(prompt, completion, answer) as clean text, or the 0 result saying why the item
    cannot be scored (a missing, empty, oversized or undecodable completion or answer)."""
    text, why = as_text(completion)
    if text is None:
        return zero(f"completion {why}")
    if not text.strip():
        return zero("empty completion")
    gold, why = as_text(answer)
    if gold is None:
        return zero(f"answer {why}")
    prompt_text, _ = as_text(prompt)
    return prompt_text or "", text, gold


def failed(exc: Exception) -> RewardResult:
    """A reward that raised scores 0 with the exception as its reason."""
    return zero(f"{type(exc).__name__}: {exc}"[:300])


def _checked(result: RewardResult, low: float, high: float) -> RewardResult:
    try:
        value = float(result.value)
    except (TypeError, ValueError, OverflowError):
        return RewardResult(low, "reward is not a number")
    if value != value or value in (float("inf"), float("-inf")):
        return RewardResult(low, "reward is not a finite number")
    return RewardResult(bounded(value, low, high), result.reason)


def guarded(fn: RewardFn, bounds: tuple[float, float] = UNIT) -> SafeRewardFn:
    """Wrap a reward so bad input and exceptions become 0 with a reason, and its value stays
    inside the type's declared `bounds`."""
    low, high = bounds

    def wrapper(
        spec: RewardSpec, prompt: object, completion: object, answer: object
    ) -> RewardResult:
        item = clean_item(prompt, completion, answer)
        if isinstance(item, RewardResult):
            return item
        try:
            result = fn(spec, *item)
        except Exception as exc:  # a reward must never crash the Job
            return failed(exc)
        return _checked(result, low, high)

    wrapper.__name__ = getattr(fn, "__name__", "reward")
    wrapper.__doc__ = fn.__doc__
    return wrapper


BatchRewardFn = Callable[
    [RewardSpec, Sequence[str], Sequence[str], Sequence[str]], list[RewardResult]
]
"""(spec, prompts, completions, answers) -> one result per item, on clean text (batched
model or network rewards)."""

SafeBatchRewardFn = Callable[
    [RewardSpec, Sequence[object], Sequence[object], Sequence[object]], list[RewardResult]
]


def guarded_batch(fn: BatchRewardFn, bounds: tuple[float, float] = UNIT) -> SafeBatchRewardFn:
    """The batch form of `guarded`: unscorable items get 0 with a reason and the rest go to
    `fn` in one call; an exception scores every item of the call 0 with its reason."""
    low, high = bounds

    def wrapper(
        spec: RewardSpec,
        prompts: Sequence[object],
        completions: Sequence[object],
        answers: Sequence[object],
    ) -> list[RewardResult]:
        results: list[RewardResult | None] = []
        clean: list[tuple[int, str, str, str]] = []
        for index, (prompt, completion, answer) in enumerate(
            zip(prompts, completions, answers, strict=True)
        ):
            item = clean_item(prompt, completion, answer)
            if isinstance(item, RewardResult):
                results.append(item)
                continue
            results.append(None)
            clean.append((index, *item))
        if clean:
            try:
                scored = fn(
                    spec, [c[1] for c in clean], [c[2] for c in clean], [c[3] for c in clean]
                )
                if len(scored) != len(clean):
                    raise ValueError(f"{len(scored)} results for {len(clean)} items")
                filled = [_checked(r, low, high) for r in scored]
            except Exception as exc:  # a reward must never crash the Job
                filled = [failed(exc)] * len(clean)
            for (index, *_), result in zip(clean, filled, strict=True):
                results[index] = result
        return [r if r is not None else zero("not scored") for r in results]

    wrapper.__name__ = getattr(fn, "__name__", "reward")
    wrapper.__doc__ = fn.__doc__
    return wrapper
