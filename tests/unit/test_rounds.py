"""The extra sampling rounds: which prompts they ask (unsolved ones; with adaptive sampling
the ones not yet settled), how their completions join the first round's, and the
per-iteration temperature."""

from __future__ import annotations

from typing import Any

import pytest

from rft_operator.api import RFTRunSpec
from rft_operator.schedule import temperature
from rft_operator.semantics import spec_problems
from rft_runtime import filters
from rft_runtime.config.filter_spec import FilterSpec
from rft_runtime.score import adaptive, rounds
from rft_runtime.score.data import PromptRow
from rft_runtime.score.outputs import mean_prompt_pass_rate, to_samples


def record(pid: str, *correct: bool, prompt: str = "p", tokens: int = 3) -> dict[str, Any]:
    return {
        "id": pid,
        "prompt": prompt,
        "answer": "5",
        "tokens": tokens,
        "completions": [
            {"index": i, "text": f"t{i}", "correct": c, "reward": float(c)}
            for i, c in enumerate(correct)
        ],
    }


def test_only_prompts_without_a_correct_sample_get_another_round() -> None:
    rows = [PromptRow("a", "2+3", "5"), PromptRow("b", "1+1", "2"), PromptRow("c", "0+0", "0")]
    records = [record("a", False, True), record("b", False, False), record("c")]
    assert [r.id for r in rounds.unsolved(rows, records)] == ["b", "c"]


def test_the_hint_shows_the_answer_and_keeps_the_row_id() -> None:
    row = PromptRow("a", "2+3?", "5", {"x": 1})
    hinted = rounds.hinted(row, "{prompt}\nHint: {answer}")
    assert hinted.prompt == "2+3?\nHint: 5" and hinted.id == "a" and hinted.answer == "5"


def test_merged_completions_are_renumbered_marked_and_keep_the_unhinted_prompt() -> None:
    first = [record("a", False, False, prompt="2+3?"), record("b", True)]
    hint = [record("a", True, False, prompt="2+3?\nHint: 5", tokens=4)]
    merged = rounds.merge(first, hint, rounds.ROUND_HINT)
    a = merged[0]
    assert a["prompt"] == "2+3?"  # training never sees the hint
    assert [c["index"] for c in a["completions"]] == [0, 1, 2, 3]
    assert [c.get("round") for c in a["completions"]] == [None, None, "hint", "hint"]
    assert a["tokens"] == 7 and merged[1] == first[1]
    assert rounds.round_metrics(first, hint, "hint") == {
        "hint_prompts": 1,
        "hint_samples": 2,
        "hint_solved": 1,
        "hint_tokens": 4,
    }


def spec(**sampler: Any) -> RFTRunSpec:
    return RFTRunSpec.model_validate(
        {"model": {"uri": "pvc://m/x"}, "data": {"train": "pvc://d/t.jsonl"}, "sampler": sampler}
    )


def test_the_temperature_schedule_runs_out_on_its_last_entry() -> None:
    assert [temperature(spec(temperature=0.7), k) for k in range(3)] == [0.7, 0.7, 0.7]
    scheduled = spec(temperature=0.7, temperatureSchedule=[1.2, 1.0])
    assert [temperature(scheduled, k) for k in range(4)] == [1.2, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("template", "ok"),
    [("{prompt} hint {answer}", True), ("{prompt} {answer} {{x}}", True), ("{prompt} {x}", False)],
)
def test_a_hint_template_with_an_unknown_placeholder_is_an_invalid_spec(
    template: str, ok: bool
) -> None:
    problems = spec_problems(spec(rationalize={"template": template}))
    assert (problems == []) is ok
    if not ok:
        assert problems[0].path == "spec.sampler.rationalize.template"
        assert "x" in problems[0].message and "{answer}" in problems[0].fix


# -- adaptive sampling (sampler.adaptive) ----------------------------------------------------


def completions(*outcomes: str) -> list[dict[str, Any]]:
    """One completion per outcome: 'ok' correct, 'cut' correct but cut at the token limit,
    'no' wrong; texts differ unless an outcome repeats as 'ok=' (a duplicate of the last)."""
    made: list[dict[str, Any]] = []
    for i, outcome in enumerate(outcomes):
        text = made[-1]["text"] if outcome == "ok=" else f"answer {i}"
        correct = outcome != "no"
        made.append(
            {
                "index": i,
                "text": text,
                "reward": float(correct),
                "correct": correct,
                "finish_reason": "length" if outcome == "cut" else "stop",
            }
        )
    return made


KEEP_TWO = FilterSpec(max_per_prompt=2, dedup=True, drop_truncated=True)


@pytest.mark.parametrize(
    ("outcomes", "spec", "settled"),
    [
        (("ok", "ok"), KEEP_TWO, True),  # two answers to keep: more change nothing
        (("ok", "ok="), KEEP_TWO, False),  # a duplicate is not a second answer
        (("ok", "cut"), KEEP_TWO, False),  # a cut answer is not kept
        (("ok", "no"), KEEP_TWO, False),
        (("no", "no"), KEEP_TWO, False),  # unsolved: an unhinted answer is worth a round
        (("ok", "no"), FilterSpec(max_per_prompt=1), True),
        (("ok", "ok", "ok"), FilterSpec(max_per_prompt=4), False),
        (("ok", "ok="), FilterSpec(drop_easy_above=1.0, dedup=True), True),  # too easy
        (("ok", "no"), FilterSpec(drop_easy_above=0.75, max_per_prompt=2), False),
        # DPO: settled once it has as many pairs (a kept answer and a worse one) as it keeps
        (("ok", "ok"), FilterSpec(max_per_prompt=1, rejected="lowest"), False),
        (("ok", "no"), FilterSpec(max_per_prompt=1, rejected="lowest"), True),
    ],
)
def test_a_prompt_is_settled_when_more_samples_would_change_nothing_it_contributes(
    outcomes: tuple[str, ...], spec: FilterSpec, settled: bool
) -> None:
    record = {"id": "a", "completions": completions(*outcomes)}
    assert adaptive.is_settled(record, spec, 1.0) is settled


def test_the_second_round_asks_only_unsettled_prompts_and_half_the_samples_come_first() -> None:
    rows = [PromptRow("a", "1+1", "2"), PromptRow("b", "2+2", "4"), PromptRow("c", "3+3", "6")]
    records = [
        {"id": "a", "completions": completions("ok", "ok")},
        {"id": "b", "completions": completions("ok", "no")},
        {"id": "c", "completions": completions("no", "no")},
    ]
    assert [r.id for r in adaptive.unsettled(rows, records, KEEP_TWO, 1.0)] == ["b", "c"]
    assert [adaptive.first_round(n) for n in (2, 3, 8, 9)] == [1, 2, 4, 5]


def test_hinted_answers_do_not_make_a_prompt_too_easy() -> None:
    """dropEasyAbove judges the policy's own pass rate: answers given with the reference
    answer shown (the hint round) say nothing about it."""
    own = completions("no", "no")
    hinted = [
        {**c, "index": 2 + i, "text": f"hinted {i}", "round": "hint"}
        for i, c in enumerate(completions("ok", "ok"))
    ]
    samples = to_samples([{"id": "a", "completions": own + hinted}])
    result = filters.apply(FilterSpec(drop_easy_above=0.5, max_per_prompt=4), 1.0, samples)
    assert result.dropped_easy == [] and len(result.kept) == 2
    plain = [{**c, "round": None} for c in hinted]  # the same answers unhinted: too easy
    samples = to_samples([{"id": "a", "completions": own + plain}])
    assert filters.apply(FilterSpec(drop_easy_above=0.5), 1.0, samples).dropped_easy == ["a"]


def test_the_pass_rate_is_the_mean_over_prompts_whatever_their_sample_counts() -> None:
    samples = to_samples(
        [
            {"id": "easy", "completions": completions("ok", "ok")},
            {"id": "hard", "completions": completions("ok", "no", "no", "no")},
        ]
    )
    assert mean_prompt_pass_rate(samples, 1.0) == pytest.approx((1.0 + 0.25) / 2)
    assert mean_prompt_pass_rate([], 1.0) == 0.0
