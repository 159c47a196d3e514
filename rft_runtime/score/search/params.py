"""The concrete parameters of one search: the spec's fields with their defaults applied."""

from __future__ import annotations

from dataclasses import dataclass

from ...config.spec import SearchSpec

DEFAULT_WIDTH = 4
DEFAULT_EXPANSION = 4
DEFAULT_SUBTREES = 4
DEFAULT_SEPARATOR = "\n\n"
DEFAULT_DEPTH = 8
DEFAULT_EXPLORATION = 1.0


@dataclass(frozen=True)
class Params:
    strategy: str
    candidates: int  # what each prompt returns (samplesPerPrompt)
    max_tokens: int  # per request choice: one step, or one full completion
    temperature: float = 1.0
    top_p: float = 1.0
    token_budget: int | None = None
    completion_budget: int | None = None
    beam_width: int = DEFAULT_WIDTH
    expansion: int = DEFAULT_EXPANSION
    subtrees: int = DEFAULT_SUBTREES
    step_separator: str = DEFAULT_SEPARATOR
    max_depth: int = DEFAULT_DEPTH
    exploration: float = DEFAULT_EXPLORATION
    seed: int | None = None

    @property
    def end_of_solution(self) -> str:
        """The separator twice: a blank step ends the solution."""
        return self.step_separator * 2


def resolve(
    strategy: str,
    spec: SearchSpec | None,
    *,
    candidates: int,
    max_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> Params:
    """Defaults applied; with no budget given, the tokens plain sampling may spend
    (candidates x max_tokens), so a strategy costs at most what `sample` does."""
    spec = spec or SearchSpec()
    token_budget = spec.token_budget
    if token_budget is None and spec.completion_budget is None:
        token_budget = candidates * max_tokens
    return Params(
        strategy=strategy,
        candidates=candidates,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        token_budget=token_budget,
        completion_budget=spec.completion_budget,
        beam_width=spec.beam_width or DEFAULT_WIDTH,
        expansion=spec.expansion or DEFAULT_EXPANSION,
        subtrees=spec.subtrees or DEFAULT_SUBTREES,
        step_separator=spec.step_separator or DEFAULT_SEPARATOR,
        max_depth=spec.max_depth or DEFAULT_DEPTH,
        exploration=(
            DEFAULT_EXPLORATION if spec.exploration_constant is None else spec.exploration_constant
        ),
        seed=spec.seed,
    )
