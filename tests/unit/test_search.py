"""The search core (rft_runtime.score.search) driven by a small deterministic generator
function: a pure test of the algorithms (budget, candidate count, seeds, guidance), with the
real `steps` reward as the guide. tests/runtime/test_search_server.py runs them on vLLM."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from rft_runtime.config.spec import RewardSpec, SearchSpec
from rft_runtime.rewards import score_batch
from rft_runtime.score.search import Ask, Params, Reply, SearchResult, resolve, search
from rft_runtime.score.search.budget import Budget
from rft_runtime.score.search.tree import request_seed

STEPS = 3  # the toy solution: 1 + 1 = 2, 2 + 1 = 3, 3 + 1 = 4, Answer: 4
GUIDE = RewardSpec(name="steps", type="steps", stepSeparator="\n")
STRATEGIES = ["sample", "bestOfN", "beam", "dvts", "mcts"]


class Toy:
    """Continues a partial solution of the toy task: each step adds 1 to the last value and
    is wrong with probability `wrong`; a token is a character. Pure given the seed."""

    def __init__(self, wrong: float = 0.5) -> None:
        self.wrong = wrong
        self.asks: list[Ask] = []
        self.unseeded = random.Random()

    def rest(self, prefix: str, rng: random.Random) -> str:
        *complete, partial = prefix.split("\n")
        lines = [line for line in complete if "=" in line]
        value = int(lines[-1].rsplit("=", 1)[1]) if lines else 1
        out = []
        for _ in range(STEPS - len(lines)):
            result = value + 1 if rng.random() >= self.wrong else value + rng.randint(2, 9)
            out.append(f"{value} + 1 = {result}\n")
            value = result
        text = "".join(out) + f"Answer: {value}\n\n"
        if partial:  # a step cut short: finish it if it can be, else end that line
            return text[len(partial) :] if text.startswith(partial) else "\n" + text
        return text

    async def __call__(self, ask: Ask) -> Reply:
        self.asks.append(ask)
        texts, finishes = [], []
        for choice in range(ask.n):
            rng = self.unseeded if ask.seed is None else random.Random(f"{ask.seed}/{choice}")
            text = self.rest(ask.prefix, rng)
            cuts = [text.find(s) + len(s) for s in ask.stop if s in text]
            end = min(cuts) if cuts else len(text)
            finish = "stop"
            if end > ask.max_tokens:
                end, finish = ask.max_tokens, "length"
            texts.append(text[:end])
            finishes.append(finish)
        await asyncio.sleep(0)  # let concurrent requests interleave
        return Reply(tuple(texts), tuple(finishes), sum(len(t) for t in texts))


async def guide(texts: list[str]) -> list[float]:
    scored = score_batch([GUIDE], ["q"] * len(texts), texts, ["4"] * len(texts))
    return [s.rewards["steps"] for s in scored]


def params(strategy: str, **fields: object) -> Params:
    spec = SearchSpec.model_validate({"stepSeparator": "\n", "seed": 7, **fields})
    return resolve(strategy, spec, candidates=4, max_tokens=40, temperature=1.0)


def run(p: Params, toy: Toy | None = None, prompt_id: str = "p0") -> SearchResult:
    return asyncio.run(search(p, prompt_id, toy or Toy(), guide))


def correct(texts: Sequence[str]) -> int:
    return sum(t.endswith("Answer: 4") for t in texts)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("budget", [60, 200, 600])
def test_token_budget_is_never_exceeded(strategy: str, budget: int) -> None:
    toy = Toy()
    result = run(params(strategy, tokenBudget=budget), toy)
    assert 0 < result.tokens <= budget
    assert result.requests == len(toy.asks)
    assert result.completions == sum(a.n for a in toy.asks)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_completion_budget_is_never_exceeded(strategy: str) -> None:
    toy = Toy()
    result = run(params(strategy, completionBudget=13), toy)
    assert result.completions == sum(a.n for a in toy.asks) <= 13
    assert result.completions >= 4


@pytest.mark.parametrize("strategy", ["bestOfN", "beam", "dvts", "mcts"])
def test_returns_the_declared_number_of_candidates(strategy: str) -> None:
    result = run(params(strategy, tokenBudget=800))
    assert len(result.candidates) == 4
    assert all(c.finish in {"stop", "length"} for c in result.candidates)  # finished ones
    assert len({c.path for c in result.candidates}) == 4 or strategy == "mcts"


def test_sample_returns_everything_it_generated() -> None:
    toy = Toy()
    result = run(params("sample", tokenBudget=400), toy)
    assert len(result.candidates) == result.completions == sum(a.n for a in toy.asks) > 4
    assert all(a.stop == ("\n\n",) and a.prefix == "" for a in toy.asks)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_search_other_seed_other_search(strategy: str) -> None:
    first = run(params(strategy, tokenBudget=500))
    again = run(params(strategy, tokenBudget=500))
    assert first == again
    other = run(params(strategy, tokenBudget=500, seed=8))
    assert [c.text for c in other.candidates] != [c.text for c in first.candidates]
    elsewhere = run(params(strategy, tokenBudget=500), prompt_id="p1")
    assert [c.text for c in elsewhere.candidates] != [c.text for c in first.candidates]


def test_step_strategies_continue_partial_solutions_at_the_separator() -> None:
    toy = Toy()
    run(params("beam", tokenBudget=600), toy)
    steps = [a for a in toy.asks if a.stop == ("\n",)]
    assert steps and any(a.prefix.count("\n") >= 2 for a in steps)
    assert len({a.seed for a in toy.asks}) == len(toy.asks)  # every request its own seed


@pytest.mark.parametrize("strategy", ["beam", "dvts", "mcts"])
def test_guided_search_finds_more_correct_answers_than_sampling(strategy: str) -> None:
    """Each step is wrong half the time, so one sample in eight is right; the guide rejects
    wrong steps, so a search at the same budget keeps more right answers."""
    budget = 1200
    sampled = searched = 0
    for prompt in range(6):
        base = run(params("sample", tokenBudget=budget), prompt_id=f"q{prompt}")
        sampled += correct([c.text for c in base.candidates]) / max(1, base.tokens)
        guided = run(params(strategy, tokenBudget=budget), prompt_id=f"q{prompt}")
        searched += correct([c.text for c in guided.candidates]) / max(1, guided.tokens)
    assert searched > sampled


def test_best_of_n_ranks_the_same_completions_as_sample() -> None:
    sampled = run(params("sample", tokenBudget=500))
    best = run(params("bestOfN", tokenBudget=500))
    assert best.tokens == sampled.tokens
    assert {c.text for c in best.candidates} <= {c.text for c in sampled.candidates}
    scores = asyncio.run(guide([c.text for c in sampled.candidates]))
    assert [c.score for c in best.candidates] == sorted(scores, reverse=True)[:4]


def test_dvts_keeps_answers_from_different_subtrees() -> None:
    result = run(params("dvts", tokenBudget=1200, subtrees=4))
    assert len({c.path[0] for c in result.candidates}) == 4


def test_mcts_rolls_out_and_respects_depth() -> None:
    toy = Toy()
    result = run(params("mcts", tokenBudget=1200, maxDepth=2), toy)
    assert any(c.rollout for c in result.candidates) or result.candidates
    assert any(a.n == 1 and a.stop == ("\n\n",) for a in toy.asks)  # rollouts
    assert all(a.prefix.count("\n") < 2 for a in toy.asks)  # nothing beyond depth 2


def test_budget_reservations() -> None:
    budget = Budget(tokens=100, completions=5)
    first = budget.reserve(4, 20)
    assert first is not None and (first.n, first.max_tokens) == (4, 20)
    second = budget.reserve(4, 20)  # 20 tokens and 1 completion left
    assert second is not None and (second.n, second.max_tokens) == (1, 20)
    assert budget.reserve(1, 20) is None
    budget.settle(first, 30, 4)  # 50 of the 80 reserved come back
    third = budget.reserve(4, 20)
    assert third is None  # no completion left
    budget.settle(second, 5, 1)
    assert (budget.used_tokens, budget.used_completions) == (35, 5)
    parts = Budget(tokens=100).split(3)
    assert [p.tokens for p in parts] == [33, 33, 33]


def test_budget_does_not_hand_out_useless_slivers() -> None:
    budget = Budget(tokens=20)
    grant = budget.reserve(4, 40)
    assert grant is not None and grant.n == 2 and grant.max_tokens == 10
    assert Budget(tokens=5).reserve(4, 40) is None


def test_defaults_spend_what_plain_sampling_may() -> None:
    p = resolve("beam", SearchSpec(prm="steps"), candidates=8, max_tokens=48)
    assert p.token_budget == 8 * 48 and p.completion_budget is None
    assert (p.beam_width, p.expansion, p.step_separator, p.max_depth) == (4, 4, "\n\n", 8)
    q = resolve("beam", SearchSpec(prm="steps", completionBudget=32), candidates=8, max_tokens=48)
    assert q.token_budget is None and q.completion_budget == 32


def test_request_seeds_are_stable_and_distinct() -> None:
    assert request_seed(None, "p", (1,), "step") is None
    seed = request_seed(3, "p", (1, 2), "step")
    assert seed == request_seed(3, "p", (1, 2), "step")
    assert seed is not None and 0 <= seed < 2**31
    others = {request_seed(3, "p", (1, 3), "step"), request_seed(3, "q", (1, 2), "step")}
    assert seed not in others
