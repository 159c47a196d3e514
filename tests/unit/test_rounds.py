"""The extra sampling rounds for unsolved prompts: which prompts they ask, how their
completions join the first round's, and the per-iteration temperature."""

from __future__ import annotations

from typing import Any

import pytest

from rft_operator.api import RFTRunSpec
from rft_operator.schedule import temperature
from rft_operator.semantics import spec_problems
from rft_runtime.score import rounds
from rft_runtime.score.data import PromptRow


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
