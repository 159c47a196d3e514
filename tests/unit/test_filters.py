"""The filters: each alone (threshold, best-k, dedup, too easy, preference pairs, length,
language, near-duplicates by shingles and embeddings), then the pipeline in its configured
order with the drop counts that reach metrics.json."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rft_runtime.config.filter_spec import FilterSpec, LanguageSpec, LengthSpec, NearDuplicateSpec
from rft_runtime.config.jobs import PromptFormat
from rft_runtime.filters import (
    Sample,
    apply,
    by_prompt,
    dedup,
    in_language,
    is_too_easy,
    length_filter,
    lowest,
    max_per_prompt,
    min_reward,
    near_dedup,
    pairs_with_lowest,
    pass_rate,
)
from rft_runtime.filters.language import UnknownLanguage, language_of
from rft_runtime.filters.near_dup import jaccard, shingles
from rft_runtime.score.outputs import dpo_rows, sft_rows, to_samples, train_metrics


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


def test_max_per_prompt_can_prefer_the_shortest_of_equal_rewards() -> None:
    g = group("a", ("a long way to 5", 1.0), ("5", 1.0), ("nope", 0.0), ("so 5", 1.0))
    assert [s.completion for s in max_per_prompt(g, 2, "shortest")] == ["5", "so 5"]
    assert [s.completion for s in max_per_prompt(g, 2)] == ["a long way to 5", "5"]
    better = group("b", ("long but right", 2.0), ("short", 1.0))
    assert [s.completion for s in max_per_prompt(better, 1, "shortest")] == ["long but right"]


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


# --- the filter library ----------------------------------------------------------------


def of_texts(*texts: str, rewards: list[float] | None = None, prompt: str = "p") -> list[Sample]:
    values = rewards or [1.0] * len(texts)
    return [Sample(prompt, i, t, r) for i, (t, r) in enumerate(zip(texts, values, strict=True))]


def texts(samples: list[Sample]) -> list[str]:
    return [s.completion for s in samples]


# --- length ---------------------------------------------------------------------------


def test_length_limits_chars_and_words() -> None:
    samples = of_texts("", "ok", "two words", "a b c d e f", "x" * 50)
    assert texts(length_filter(samples, LengthSpec(minChars=2))) == texts(samples)[1:]
    assert texts(length_filter(samples, LengthSpec(maxChars=9))) == ["", "ok", "two words"]
    assert texts(length_filter(samples, LengthSpec(minWords=2, maxWords=5))) == ["two words"]
    assert texts(length_filter(samples, LengthSpec(maxWords=1, minChars=1))) == ["ok", "x" * 50]


def test_length_enormous_completion_is_dropped_not_crashing() -> None:
    huge = "word " * 2_000_000
    assert (
        length_filter(of_texts(huge, "fine"), LengthSpec(maxChars=1000))
        == of_texts(huge, "fine")[1:]
    )


# --- language -------------------------------------------------------------------------


ENGLISH = "The answer is forty-two because six times seven equals forty-two."
GERMAN = "Die Antwort ist zweiundvierzig, weil sechs mal sieben zweiundvierzig ergibt."
FRENCH = "La réponse est quarante-deux parce que six fois sept font quarante-deux."


def test_language_detection() -> None:
    assert language_of(ENGLISH) == "EN"
    assert language_of(GERMAN) == "DE"
    assert language_of(FRENCH) == "FR"


def test_language_filter_keeps_allowed_and_undecidable() -> None:
    samples = of_texts(ENGLISH, GERMAN, FRENCH, "42", "x = 6 * 7  # 42", "")
    kept = in_language(samples, LanguageSpec(allowed=["en"]))
    # short or undetectable completions (numbers, code) are kept: nothing to judge
    assert texts(kept) == [ENGLISH, "42", "x = 6 * 7  # 42", ""]
    both = in_language(samples, LanguageSpec(allowed=["en", "de"], minChars=0))
    assert GERMAN in texts(both) and FRENCH not in texts(both)


def test_language_unknown_code_names_the_field() -> None:
    # the schema only admits the codes lingua detects (an enum in the CRD) ...
    for bad in (["qq"], ["english"], []):
        with pytest.raises(ValidationError):
            LanguageSpec(allowed=bad)
    # ... and a config that bypassed validation still fails with the field and the fix
    unchecked = LanguageSpec.model_construct(allowed=["qq"], min_chars=20)
    with pytest.raises(UnknownLanguage, match=r"filter\.language\.allowed"):
        in_language(of_texts(ENGLISH), unchecked)


# --- near duplicates ------------------------------------------------------------------


def test_shingle_jaccard() -> None:
    a = shingles("the cat sat on the mat", 2)
    b = shingles("The cat sat on the mat!", 2)
    c = shingles("completely different words here", 2)
    assert jaccard(a, b) == 1.0 and jaccard(a, c) == 0.0
    assert shingles("", 3) == frozenset() and jaccard(frozenset(), frozenset()) == 1.0
    assert shingles("one two", 3) == frozenset({("one", "two")})


def test_near_dedup_shingles_keeps_first_of_each_cluster() -> None:
    base = "First add 2 and 3 to get 5, then multiply by 4 to get 20. The answer is 20."
    samples = of_texts(
        base,
        base.replace("The answer is 20.", "So the answer is 20."),  # near-duplicate
        "Multiply first: 3 times 4 is 12, plus 2 is 14. The answer is 14.",
        base.upper(),  # same words, different case
    )
    kept = near_dedup(samples, NearDuplicateSpec(threshold=0.7))
    assert [s.index for s in kept] == [0, 2]
    strict = near_dedup(samples, NearDuplicateSpec(threshold=1.0))
    assert [s.index for s in strict] == [0, 1, 2]


def test_near_dedup_embedding() -> None:
    samples = of_texts(
        "The cat is sitting on the mat.",
        "A cat sits on the mat.",
        "Quarterly revenue grew by twelve percent.",
    )
    kept = near_dedup(samples, NearDuplicateSpec(method="embedding", threshold=0.8))
    assert [s.index for s in kept] == [0, 2]


# --- the pipeline and its counts ------------------------------------------------------


def test_pipeline_order_and_drop_counts() -> None:
    long_text = "This answer rambles on " * 20
    samples = of_texts(
        "The answer is 42 because six times seven is 42.",
        "The answer is 42 because six times seven is 42!",  # near-duplicate of 0
        "The answer is 42 because six times seven is 42.",  # exact duplicate of 0
        GERMAN,  # wrong language
        long_text,  # too long
        "The result is 41 since I guessed.",  # below min reward
        "Six sevens make 42, so 42 it is.",
        rewards=[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0],
    )
    spec = FilterSpec(
        minReward=1.0,
        maxPerPrompt=1,
        length={"maxChars": 200},
        language={"allowed": ["en"]},
        nearDuplicates={"threshold": 0.6},
    )
    result = apply(spec, 1.0, samples)
    assert [s.index for s in result.kept] == [0]
    assert result.dropped == {
        "length": 1,
        "language": 1,
        "duplicates": 1,
        "near_duplicates": 1,
        "min_reward": 1,
        "truncated": 0,
        "max_per_prompt": 1,
    }
    assert result.duplicates == 1
    records = [
        {
            "id": "p",
            "prompt": "q",
            "answer": "42",
            "completions": [
                {"index": s.index, "text": s.completion, "reward": s.reward, "rewards": {}}
                for s in samples
            ],
        }
    ]
    metrics: dict[str, Any] = train_metrics(records, result, 1.0)
    assert metrics["dropped_by_filter"]["language"] == 1
    assert metrics["kept"] == 1


def test_easy_prompts_counted() -> None:
    spec = FilterSpec(dropEasyAbove=1.0)
    result = apply(
        spec, 1.0, of_texts("a", "b", prompt="easy") + of_texts("c", "d", rewards=[1, 0])
    )
    assert result.dropped_easy == ["easy"]
    assert result.dropped["easy_prompt"] == 2
    assert [s.completion for s in result.kept] == ["c"]


def test_defaults_unchanged_without_new_filters() -> None:
    samples = of_texts("same", "same", "other", rewards=[1.0, 1.0, 0.5])
    result = apply(FilterSpec(), 1.0, samples)
    assert [s.index for s in result.kept] == [0]
    assert "length" not in result.dropped and "language" not in result.dropped
    assert result.dropped["duplicates"] == 1


def test_completions_cut_at_the_token_limit_are_not_kept_but_still_rejected() -> None:
    """A cut completion that happens to end on the right number is no demonstration; it
    still counts for the prompt's pass rate and is a fair rejected sample."""
    records = [
        {
            "id": "p",
            "prompt": "What is 2 + 2?",
            "completions": [
                {"index": 0, "text": "4, then we add", "reward": 1.0, "finish_reason": "length"},
                {"index": 1, "text": "2 + 2 = 4", "reward": 1.0, "finish_reason": "stop"},
                {"index": 2, "text": "Let me think about 5 and", "reward": 0.0,
                 "finish_reason": "length"},
            ],
        }
    ]  # fmt: skip
    samples = to_samples(records)
    assert [s.finished for s in samples] == [False, True, False]
    result = apply(FilterSpec(maxPerPrompt=2, rejected="lowest"), 1.0, samples)
    assert [s.index for s in result.kept] == [1]
    assert result.dropped["truncated"] == 1
    assert [(c.index, r.index) for c, r in result.pairs] == [(1, 2)]
    fmt = PromptFormat()
    assert "completion_finished" not in sft_rows(records, result, fmt)[0]
    assert dpo_rows(records, result, fmt)[0]["rejected_finished"] is False
    # pass rate is judged on every sample, cut or not: 2 of 3 correct
    assert is_too_easy(samples, 1.0, 0.6)

    kept_all = apply(FilterSpec(maxPerPrompt=2, dropTruncated=False), 1.0, samples)
    assert [s.index for s in kept_all.kept] == [0, 1]
    rows = sft_rows(records, kept_all, fmt)
    assert rows[0]["completion_finished"] is False and "completion_finished" not in rows[1]


@pytest.mark.parametrize(
    "bad",
    [
        {"nearDuplicates": {"threshold": 0}},
        {"nearDuplicates": {"method": "minhash"}},
        {"language": {"allowed": []}},
        {"length": {"maxChars": 0}},
        {"length": {"minChars": -1}},
    ],
)
def test_bad_filter_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FilterSpec(**bad)
