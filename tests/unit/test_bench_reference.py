"""The pure parts of the plain-script baseline (bench/bench_reference_loop.py): it must keep
and mask exactly what the project's filter and training data do, or the comparison of
issue 17 compares different work."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.bench_reference_loop import (
    IGNORE,
    collate,
    length_grouped,
    load_spec,
    plain_recipe,
    resolver,
    select_kept,
    sft_example,
    unsupported,
)
from rft_runtime import filters
from rft_runtime.bundled_models import cache_root
from rft_runtime.config.filter_spec import FilterSpec
from rft_runtime.train import data as D

from ..conftest import ROOT

EXAMPLE = ROOT / "examples" / "arith-smollm2.yaml"


def test_keeps_at_most_k_distinct_correct_best_first() -> None:
    texts = ["12", "12", "wrong", "12.", "the answer is 12", "12"]
    rewards = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert select_kept(texts, rewards, 1.0, 2, dedup=True) == [0, 3]
    assert select_kept(texts, rewards, 1.0, 2, dedup=False) == [0, 1]
    assert select_kept(texts, rewards, 1.0, 10, dedup=True) == [0, 3, 4]
    assert select_kept(texts, rewards, 2.0, 10, dedup=True) == []


def test_prefers_higher_reward_then_earlier_sample() -> None:
    texts = ["a", "b", "c", "d"]
    assert select_kept(texts, [0.5, 0.9, 0.9, 0.7], 0.5, 2, dedup=True) == [1, 2]


@pytest.mark.parametrize("seed", range(20))
def test_selection_agrees_with_the_project_filter(seed: int) -> None:
    rng = random.Random(seed)
    texts = [rng.choice(["1", "2", "3", "4"]) for _ in range(8)]
    rewards = [rng.choice([0.0, 0.5, 1.0]) for _ in range(8)]
    spec = FilterSpec(min_reward=0.5, max_per_prompt=2, dedup=rng.random() < 0.5)
    project = filters.apply(
        spec,
        0.5,
        [filters.Sample("p", i, t, r) for i, (t, r) in enumerate(zip(texts, rewards, strict=True))],
    )
    mine = select_kept(texts, rewards, 0.5, 2, spec.dedup)
    assert mine == [s.index for s in project.kept]


def test_labels_cover_the_completion_and_eos_only() -> None:
    example = sft_example([5, 6, 7], [8, 9], eos_id=2, max_len=16)
    assert example == ([5, 6, 7, 8, 9, 2], [IGNORE, IGNORE, IGNORE, 8, 9, 2])
    project, _ = D.encode([5, 6, 7], [8, 9, 2], 16)
    assert project is not None and example == (project.input_ids, project.labels)


def test_truncation_and_no_room_left() -> None:
    assert sft_example([5, 6, 7], [8, 9], eos_id=2, max_len=4) == ([5, 6, 7, 8], [IGNORE] * 3 + [8])
    assert sft_example([5, 6, 7], [8, 9], eos_id=2, max_len=3) is None


def test_collate_pads_right_without_attention_or_loss() -> None:
    batch = collate([([1, 2, 3], [IGNORE, 2, 3]), ([4], [4])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3], [4, IGNORE, IGNORE]]


def test_length_grouped_batches_cover_every_example_once() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(10, 60) for _ in range(37)]
    batches = length_grouped(lengths, 8, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(37))
    assert sorted(len(b) for b in batches) == [5, 8, 8, 8, 8]
    # each batch holds neighbours in length order: total padding is far below a random split
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread <= max(lengths) - min(lengths)


def test_resolves_claims_as_rft_run_local() -> None:
    spec = load_spec(EXAMPLE)
    resolve = resolver(spec, EXAMPLE)
    data = ROOT / "examples" / "data" / "arith"
    assert Path(resolve(spec.data.train)) == data / "train-3000.jsonl"
    assert Path(resolve(spec.model.uri)) == cache_root() / "models" / "smollm2-135m-instruct"


def test_the_example_needs_nothing_unsupported_but_dpo_is_refused() -> None:
    spec = load_spec(EXAMPLE)
    assert unsupported(spec) == []
    dpo = spec.model_copy(update={"training": spec.training.model_copy(update={"method": "dpo"})})
    assert unsupported(dpo) == ["training.method: dpo"]


def test_the_reference_runs_the_plain_recipe_without_rfts_levers() -> None:
    spec = load_spec(EXAMPLE)
    sampler = spec.sampler.model_copy(
        update={"adaptive": True, "unsolved_extra_samples": 4, "temperature_schedule": [1.0, 0.7]}
    )
    tuned = spec.model_copy(
        update={
            "sampler": sampler,
            "filter": spec.filter.model_copy(
                update={"drop_easy_above": 0.75, "prefer": "shortest"}
            ),
        }
    )
    plain, ignored = plain_recipe(tuned)
    assert ignored == [
        "sampler.adaptive",
        "sampler.unsolvedExtraSamples",
        "sampler.rationalize",  # the example's own lever
        "sampler.temperatureSchedule",
        "filter.dropEasyAbove",
        "filter.prefer",
        "filter.dropTruncated",  # on by default: a plain script keeps cut completions
    ]
    assert plain.filter.prefer == "first" and plain.filter.drop_truncated is False
    assert plain.sampler.unsolved_extra_samples == 0 and plain.sampler.temperature_schedule is None
    assert plain.sampler.rationalize is None and plain.sampler.adaptive is False
    assert plain.filter.drop_easy_above is None
    assert plain.filter.max_per_prompt == spec.filter.max_per_prompt  # the recipe's own sizes
    assert plain.sampler.samples_per_prompt == spec.sampler.samples_per_prompt
    assert plain_recipe(plain) == (plain, [])  # nothing left to strip
