"""The GRPO Job's bookkeeping without DeepSpeed or a sampler: which prompts a rank takes,
how a scored group becomes token sequences and advantages, and what a rejected prompt gives."""

from __future__ import annotations

import math
import string
from typing import Any

import pytest
import torch

from rft_runtime.config.jobs import (
    Endpoint,
    GrpoJob,
    PolicySync,
    PromptFormat,
    PromptSource,
    SamplingParams,
    TrainJobConfig,
)
from rft_runtime.config.spec import GrpoSpec, RewardSpec
from rft_runtime.score.data import PromptRow
from rft_runtime.train import data as D
from rft_runtime.train.grpo_loop import GrpoTrainer
from rft_runtime.train.grpo_sampling import Batch, Group, group_of

TEMPLATE = (
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """A character-level tokenizer built here: one token per character."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable) - set("\r\x0b\x0c"))
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(BPE(vocab=vocab, merges=[])),
        pad_token="<pad>",
        eos_token="<eos>",
    )
    tok.chat_template = TEMPLATE
    return tok


def trainer(tokenizer: Any, world: int = 1, rank: int = 0, **params: Any) -> GrpoTrainer:
    job = GrpoJob(
        params=GrpoSpec(**{"group_size": 2, "prompts_per_step": 3, **params}),
        policy=Endpoint(base_url="http://sampler:8000/v1", model="policy"),
        policy_sync=PolicySync(policy_file="/p.json", loaded_dir="/loaded", policy_path="/m"),
        prompts=PromptSource(path="/train.jsonl"),
        prompt_format=PromptFormat(prompt_template="Q: {prompt}"),
        sampling=SamplingParams(n=2),
        rewards=[RewardSpec(name="answer", type="numeric", weight=1.0)],
        step_offset=10,
    )
    cfg = TrainJobConfig(
        run="r",
        iteration=1,
        method="grpo",
        grpo=job,
        init_model_path="/m",
        output_dir="/out/it-1",
        max_seq_len=64,
    )
    t = GrpoTrainer(cfg)
    t.tokenizer, t.world, t.rank = tokenizer, world, rank
    t.rows = [PromptRow(str(i), f"{i}+1", str(i + 1)) for i in range(7)]
    t.per_rank = -(-job.params.prompts_per_step // world)
    return t


def test_ranks_split_the_steps_prompts_and_a_resumed_run_takes_the_same(tokenizer: Any) -> None:
    one = trainer(tokenizer)
    assert len(one.rows_for(1)) == 3
    assert one.rows_for(1) == trainer(tokenizer).rows_for(1)  # a restarted pod
    assert one.rows_for(1) != one.rows_for(2)
    ranks = [trainer(tokenizer, world=2, rank=r) for r in range(2)]
    shares = [t.rows_for(1) for t in ranks]
    assert [len(s) for s in shares] == [2, 2]  # 3 prompts rounded up to 2 per rank
    assert not set(r.id for r in shares[0]) & set(r.id for r in shares[1])


def test_a_group_becomes_sequences_with_its_advantages(tokenizer: Any) -> None:
    t = trainer(tokenizer)
    row = PromptRow("5", "5+1", "6")
    batch = Batch(
        step=1,
        policy_step=0,
        groups=[
            Group(row, ["6", "7 and on"], ["stop", "length"], [1.0, 0.0], [True, False]),
            Group(row, ["6", "6"], ["stop", "stop"], [1.0, 1.0], [True, True]),
        ],
    )
    seqs, advantages, tokens, olds = t.sequences(batch)
    assert advantages == pytest.approx([1.0, -1.0, 0.0, 0.0], abs=1e-5)
    prompt = "[user]Q: 5+1[assistant]"  # the prompt template, through the chat template
    first = seqs[0]
    assert "".join(tokenizer.convert_ids_to_tokens(first.input_ids[: len(prompt)])) == prompt
    assert first.input_ids[-1] == tokenizer.eos_token_id  # it stopped: EOS is learnt
    cut = seqs[1]  # cut at max tokens: no EOS is made up
    assert cut.input_ids[-1] != tokenizer.eos_token_id
    assert len(cut.input_ids) == len(prompt) + len("7 and on")
    assert tokens == 2 + len("7 and on") + 2 + 2  # completion tokens with their EOS
    assert olds == [None] * 4  # sync: no sampler log-probabilities, the trainee is the old


def test_a_completion_that_does_not_fit_still_counts_without_loss(tokenizer: Any) -> None:
    t = trainer(tokenizer)
    long_prompt = PromptRow("9", "x" * 80, "1")
    batch = Batch(1, 0, [Group(long_prompt, ["1", "2"], ["stop", "stop"], [1.0, 0.0], [1, 0])])
    seqs, advantages, tokens, olds = t.sequences(batch)
    assert len(seqs) == 2 and tokens == 0 and advantages[0] > 0 and olds == [None, None]
    assert all(label == D.IGNORE for s in seqs for label in s.labels)
    assert all(len(s.input_ids) == 64 for s in seqs)


def test_a_rejected_prompt_is_a_group_without_signal() -> None:
    row = PromptRow("1", "p", "a")
    record = {"id": "1", "completions": [], "error": "HTTP 400: prompt too long"}
    group = group_of(row, record, 4)
    assert group.rewards == [0.0] * 4 and group.error == "HTTP 400: prompt too long"
    ok = group_of(
        row,
        {
            "completions": [
                {"text": "a", "finish_reason": "stop", "reward": 1.0, "correct": True},
                {"text": "b", "finish_reason": "length", "reward": 0.2, "correct": False},
            ]
        },
        2,
    )
    assert ok.texts == ["a", "b"] and ok.rewards == [1.0, 0.2] and ok.error is None
    assert ok.finish_reasons == ["stop", "length"] and ok.correct == [True, False]


def test_async_trains_the_sampled_tokens_against_the_samplers_logprobs(tokenizer: Any) -> None:
    t = trainer(tokenizer)
    row = PromptRow("5", "5+1", "6")
    eos = tokenizer.eos_token_id
    six, seven = tokenizer.convert_tokens_to_ids(["6", "7"])
    sampled = [([six, eos], [-0.5, -0.1]), ([seven, seven], [-2.0, -9999.0])]
    group = Group(row, ["6", "77"], ["stop", "length"], [1.0, 0.0], [True, False], None, sampled)
    seqs, _, tokens, olds = t.sequences(Batch(1, 0, [group]))
    prompt = len("[user]Q: 5+1[assistant]")
    assert seqs[0].input_ids[prompt:] == [six, eos] and seqs[1].input_ids[prompt:] == [seven] * 2
    assert tokens == 4
    first, second = olds
    assert first is not None and second is not None
    assert first[prompt:] == [-0.5, -0.1] and all(math.isnan(x) for x in first[:prompt])
    assert second[prompt] == -2.0 and math.isnan(second[prompt + 1])  # vLLM's floor: unknown
    # aligned with token_logps: position j predicts token j + 1
    current = torch.zeros(2, len(seqs[0].input_ids) - 1) - 3.0
    old = t.old_logps(olds, current)
    assert old[0, prompt - 1].item() == -0.5 and old[0, prompt].item() == pytest.approx(-0.1)
    assert old[1, prompt - 1].item() == -2.0
    assert old[1, prompt].item() == -3.0 and old[0, 0].item() == -3.0  # unknown: the trainee's
    # logits only from the first scored column (start = prompt - 1): still aligned
    cut = t.old_logps(olds, current[:, prompt - 1 :], start=prompt - 1)
    assert cut[0, 0].item() == -0.5 and cut[0, 1].item() == pytest.approx(-0.1)
    assert cut[1, 0].item() == -2.0 and cut[1, 1].item() == -3.0


def test_a_stop_without_eos_in_the_sampled_tokens_gets_one(tokenizer: Any) -> None:
    t = trainer(tokenizer)
    six = tokenizer.convert_tokens_to_ids("6")
    sampled = [([six], [-0.5]), ([six], [-0.5])]
    group = Group(
        PromptRow("5", "5+1", "6"), ["6", "6"], ["stop"] * 2, [1.0, 1.0], [1, 1], None, sampled
    )
    seqs, _, _, olds = t.sequences(Batch(1, 0, [group]))
    assert seqs[0].input_ids[-1] == tokenizer.eos_token_id
    assert olds[0] is not None and math.isnan(olds[0][-1])
