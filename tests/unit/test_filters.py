"""Each filter alone, then the pipeline in its configured order."""

from __future__ import annotations

from rft_runtime.config.filter_spec import FilterSpec
from rft_runtime.filters import (
    Sample,
    apply,
    by_prompt,
    dedup,
    is_too_easy,
    lowest,
    max_per_prompt,
    min_reward,
    pairs_with_lowest,
    pass_rate,
)


def group(prompt: str, *items: tuple[str, float]) -> list[Sample]:
    return [Sample(prompt, i, text, reward) for i, (text, reward) in enumerate(items)]


def test_min_reward() -> None:
    g = group("a", ("x", 0.5), ("y", 1.0), ("z", 1.5))
    assert [s.completion for s in min_reward(g, 1.0)] == ["y", "z"]
    assert min_reward(g, 2.0) == []


def test_max_per_prompt_best_first_with_index_tiebreak() -> None:
    g = group("a", ("x", 1.0), ("y", 2.0), ("z", 1.0), ("w", 1.0))
    assert [s.completion for s in max_per_prompt(g, 3)] == ["y", "x", "z"]
    assert [s.completion for s in max_per_prompt(list(reversed(g)), 2)] == ["y", "x"]


def test_dedup_keeps_first_of_each() -> None:
    g = group("a", ("same", 1.0), ("other", 0.0), ("same", 1.0))
    assert [(s.completion, s.index) for s in dedup(g)] == [("same", 0), ("other", 1)]


def test_pass_rate_and_too_easy() -> None:
    g = group("a", ("x", 1.0), ("y", 1.0), ("z", 0.0), ("w", 1.0))
    assert pass_rate(g, 1.0) == 0.75
    assert pass_rate([], 1.0) == 0.0
    assert is_too_easy(g, 1.0, 0.75)
    assert not is_too_easy(g, 1.0, 1.0)
    assert not is_too_easy(g, 1.0, None)


def test_lowest_and_pairs_only_when_strictly_worse() -> None:
    g = group("a", ("x", 1.0), ("y", 0.0), ("z", 0.0))
    assert lowest(g) == g[1]
    assert lowest([]) is None
    pairs = pairs_with_lowest([g[0]], g)
    assert pairs == [(g[0], g[1])]
    tied = group("b", ("x", 1.0), ("y", 1.0))
    assert pairs_with_lowest(tied, tied) == []


def test_by_prompt_groups_in_order() -> None:
    samples = [Sample("b", 1, "q", 0), Sample("a", 0, "p", 0), Sample("b", 0, "r", 0)]
    groups = by_prompt(samples)
    assert list(groups) == ["b", "a"]
    assert [s.index for s in groups["b"]] == [0, 1]


def test_pipeline() -> None:
    samples = [
        *group("easy", ("4", 1.0), ("4", 1.0)),
        *group("mixed", ("7", 1.0), ("7", 1.0), ("seven", 1.0), ("8", 0.0), ("9", 0.5)),
        *group("hard", ("1", 0.0), ("2", 0.0)),
    ]
    spec = FilterSpec(max_per_prompt=2, drop_easy_above=1.0, dedup=True, rejected="lowest")
    result = apply(spec, 1.0, samples)
    assert result.dropped_easy == ["easy"]
    assert [(s.prompt_id, s.completion) for s in result.kept] == [
        ("mixed", "7"),
        ("mixed", "seven"),
    ]
    assert result.duplicates == 2  # one in "easy", one in "mixed"
    assert [(c.completion, r.completion) for c, r in result.pairs] == [("7", "8"), ("seven", "8")]


def test_pipeline_without_dedup_or_pairs() -> None:
    samples = group("p", ("7", 1.0), ("7", 1.0), ("8", 0.0))
    result = apply(FilterSpec(max_per_prompt=5, dedup=False), 1.0, samples)
    assert [s.index for s in result.kept] == [0, 1]
    assert result.pairs == []
    assert result.dropped_easy == []
