"""The pure edges of the search: the `steps` checker, the continuation requests sent to
the sampler, the progress record of a searched prompt, and the operator passing
sampler.strategy/search into the scoring Job's config."""

from __future__ import annotations

from typing import Any

import pytest

from rft_operator.api import RFTRunSpec
from rft_operator.jobconfigs import score_config
from rft_operator.layout import cluster_layout
from rft_runtime.config.jobs import PromptFormat, SamplingParams
from rft_runtime.config.spec import RewardSpec, SearchSpec
from rft_runtime.rewards import score_one
from rft_runtime.rewards.steps import equations, evaluate
from rft_runtime.score.data import PromptRow
from rft_runtime.score.search import Ask, Candidate, SearchResult, resolve
from rft_runtime.score.search.endpoint import continuation_body
from rft_runtime.score.search.searchpass import GuideMissing, guide_spec, params_for, search_record

from ..conftest import ROOT, load_yaml

STEPS = RewardSpec(name="steps", type="steps")


@pytest.mark.parametrize(
    ("completion", "value"),
    [
        ("12 + 35 = 47\n47 + 41 = 88\nAnswer: 88", 1.0),
        ("12 + 35 = 47\n47 + 41 = 89\nAnswer: 89", 0.0),  # one wrong step spoils it
        ("12 + 35 = 48\n48 + 41 = 89", 0.0),
        ("First add the tens.\n(2 + 3) * 4 = 20", 1.0),  # prose is not judged
        ("I think the answer is 88.", 0.5),  # nothing to check
        ("7 \u00d7 6 = 42 and 42 \u00f7 7 = 6", 1.0),
        ("1 / 0 = 5", 0.5),  # not a number: not judged, never an exception
        ("2 ** 99999 = 1", 0.5),  # only + - * /: no way to burn CPU
    ],
)
def test_steps_checker(completion: str, value: float) -> None:
    assert score_one([STEPS], "q", completion, "88").rewards["steps"] == value


def test_steps_checker_aggregates_and_splits_as_configured() -> None:
    mean = RewardSpec(name="s", type="steps", aggregate="mean", step_separator="\n\n")
    text = "1 + 1 = 2\n\n2 + 2 = 5\n\n3 + 3 = 6\n\n4 + 4 = 8"
    assert score_one([mean], "q", text, "").rewards["s"] == pytest.approx(0.75)
    last = RewardSpec(name="s", type="steps", aggregate="last")
    assert score_one([last], "q", "1 + 1 = 3\n2 + 2 = 4", "").rewards["s"] == 1.0


def test_equations_read_chains_and_skip_non_arithmetic() -> None:
    assert equations("23 + 45 = 68 + 17 = 85") == [True, True]
    assert equations("x = 5, so Answer = 5") == []
    assert evaluate("12 + 3") == 15 and evaluate("12") is None and evaluate("a + b") is None


def params(**fields: Any) -> Any:
    return resolve("beam", SearchSpec.model_validate(fields), candidates=2, max_tokens=32)


def test_continuation_of_a_chat_answer() -> None:
    fmt = PromptFormat(system_prompt="Be brief.")
    ask = Ask("Step 1\n\n", 3, 20, ("\n\n",), 42)
    path, body = continuation_body(fmt, "adapter-7", "What is 2 + 2?", ask, params())
    assert path == "chat/completions"
    assert body["model"] == "adapter-7" and body["n"] == 3 and body["max_tokens"] == 20
    assert body["messages"][-1] == {"role": "assistant", "content": "Step 1\n\n"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["stop"] == ["\n\n"] and body["include_stop_str_in_output"] is True
    assert body["seed"] == 42


def test_first_step_and_raw_prompt_continuation() -> None:
    path, body = continuation_body(PromptFormat(), "m", "Q", Ask("", 2, 8, ("\n",), None), params())
    assert path == "chat/completions" and [m["role"] for m in body["messages"]] == ["user"]
    assert "continue_final_message" not in body and "seed" not in body
    raw = PromptFormat(prompt_template="Q: {prompt}\n", use_chat_template=False)
    path, body = continuation_body(raw, "m", "2 + 2", Ask("2 + 2 = 4\n", 1, 8, (), 1), params())
    assert path == "completions" and body["prompt"] == "Q: 2 + 2\n2 + 2 = 4\n"
    assert "stop" not in body


def test_search_record_keeps_strategy_path_and_guide() -> None:
    row = PromptRow("p1", "12 + 35", "47")
    result = SearchResult(
        [
            Candidate("12 + 35 = 47\nAnswer: 47", (0, 2), 1.0, "stop"),
            Candidate("12 + 35 = 46\nAnswer: 46", (1,), 0.0, "length", rollout=True),
        ],
        tokens=90,
        completions=12,
        requests=4,
        nodes=12,
    )
    answer = RewardSpec(name="answer", type="numeric")
    record = search_record(row, result, [answer, STEPS], "mcts")
    assert record["id"] == "p1" and record["tokens"] == 90
    assert record["search"] == {"strategy": "mcts", "completions": 12, "requests": 4, "nodes": 12}
    first, second = record["completions"]
    assert (first["index"], first["path"], first["guide"], first["reward"]) == (0, [0, 2], 1.0, 2.0)
    assert first["strategy"] == "mcts" and "rollout" not in first
    assert second["rollout"] is True and second["finish_reason"] == "length"
    assert second["rewards"] == {"answer": 0.0, "steps": 0.0}


def test_guide_must_be_a_reward_of_the_job() -> None:
    assert guide_spec([STEPS], "steps") is STEPS
    with pytest.raises(GuideMissing, match=r"sampler\.search\.prm .prm. is not a reward"):
        guide_spec([STEPS], "prm")


def test_sampling_params_resolve_the_search() -> None:
    sampling = SamplingParams(n=3, temperature=0.7, top_p=0.9, max_tokens=64, strategy="dvts")
    p = params_for(sampling, SearchSpec(prm="steps", subtrees=3))
    assert (p.strategy, p.candidates, p.temperature, p.top_p) == ("dvts", 3, 0.7, 0.9)
    assert p.subtrees == 3 and p.token_budget == 3 * 64


def test_operator_passes_strategy_and_search_to_the_scoring_job() -> None:
    manifest: dict[str, Any] = load_yaml(ROOT / "examples" / "minimal.yaml")["spec"]
    manifest["rewards"] = [
        {"name": "answer", "type": "math"},
        {"name": "steps", "type": "steps", "weight": 0.0},
    ]
    manifest.setdefault("sampler", {}).update(
        strategy="mcts", search={"prm": "steps", "tokenBudget": 512, "explorationConstant": 2.0}
    )
    spec = RFTRunSpec.model_validate(manifest)
    config = score_config(spec, "run", 0, cluster_layout("run", "ns", spec))
    assert config.sampling.strategy == "mcts"
    assert config.search == SearchSpec(prm="steps", token_budget=512, exploration_constant=2.0)
    plain = RFTRunSpec.model_validate(load_yaml(ROOT / "examples" / "minimal.yaml")["spec"])
    default = score_config(plain, "run", 0, cluster_layout("run", "ns", plain))
    assert default.sampling.strategy == "sample" and default.search is None
