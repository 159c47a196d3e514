"""GRPO's advantages and loss against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rft_runtime.train.data import IGNORE
from rft_runtime.train.grpo import (
    Aggregation,
    aggregate,
    group_advantages,
    grpo_loss,
    kl_k3,
    micro_batches,
    rank_share,
    step_prompts,
    token_logps,
    zero_signal_fraction,
)


def test_advantages_are_normalised_within_each_group() -> None:
    # group 1: [1, 0, 0, 1] mean 0.5, population std 0.5 -> +-1
    # group 2: [3, 1, 1, 1] mean 1.5, std sqrt((2.25 + 3 * 0.25) / 4) = sqrt(0.75)
    adv = group_advantages([1, 0, 0, 1, 3, 1, 1, 1], 4, eps=0.0)
    assert adv[:4] == pytest.approx([1, -1, -1, 1])
    s = math.sqrt(0.75)
    assert adv[4:] == pytest.approx([1.5 / s, -0.5 / s, -0.5 / s, -0.5 / s])
    assert sum(adv[4:]) == pytest.approx(0.0)


def test_a_group_with_equal_rewards_has_exactly_zero_advantages() -> None:
    adv = group_advantages([0.7, 0.7, 0.7, 1.0, 0.0, 1.0], 3)
    assert adv[:3] == [0.0, 0.0, 0.0]
    assert adv[3:] != [0.0, 0.0, 0.0]
    assert zero_signal_fraction([0.7, 0.7, 0.7, 1.0, 0.0, 1.0], 3) == 0.5


def test_eps_keeps_the_division_finite_and_scale_off_only_centres() -> None:
    assert group_advantages([1, 0], 2, eps=0.5) == pytest.approx([0.5, -0.5])  # 0.5 / (0.5+0.5)
    assert group_advantages([3, 1], 2, scale=False) == pytest.approx([1.0, -1.0])


def test_rewards_that_do_not_fill_groups_are_an_error() -> None:
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages([1, 0, 1], 4)


def test_token_logps_pick_the_label_tokens_and_mask_the_prompt() -> None:
    # vocab 2; position 0 predicts position 1, etc.
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75], [0.9, 0.1], [0.5, 0.5]]]))
    labels = torch.tensor([[IGNORE, IGNORE, 1, 0]])  # prompt of 2 tokens, completion [1, 0]
    logps, mask = token_logps(logits, labels)
    assert mask.tolist() == [[False, True, True]]
    assert logps[0, 1].item() == pytest.approx(math.log(0.75))
    assert logps[0, 2].item() == pytest.approx(math.log(0.9))
    assert logps[0, 0].item() == 0.0


def test_sync_loss_with_ratio_one_is_minus_the_mean_advantage_per_token() -> None:
    logps = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    adv = torch.tensor([2.0, -1.0])
    out = grpo_loss(logps, logps.detach(), adv, mask, clip_range=0.2)
    # tokens: 2, 2, -1 -> loss = -(2 + 2 - 1) / 3
    assert out.loss.item() == pytest.approx(-1.0)
    assert out.clipped.item() == 0.0 and out.kl is None
    out.loss.backward()
    assert logps.grad is not None
    # d/dlogp of -ratio*A at ratio 1 is -A / 3 on each completion token, 0 elsewhere
    assert logps.grad.flatten().tolist() == pytest.approx([-2 / 3, -2 / 3, 0.0, 1 / 3, 0.0, 0.0])


def test_the_clip_stops_the_gradient_beyond_the_range() -> None:
    # ratios: e^0.5 = 1.65 (A > 0, clipped at 1.2), e^-0.5 = 0.61 (A < 0, clipped at 0.8),
    # e^0.1 = 1.105 (inside the range)
    old = torch.zeros(3, 1)
    logps = torch.tensor([[0.5], [-0.5], [0.1]], requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 1.0])
    mask = torch.ones(3, 1, dtype=torch.bool)
    out = grpo_loss(logps, old, adv, mask, clip_range=0.2)
    expected = -(1.2 * 1.0 + 0.8 * -1.0 + math.exp(0.1) * 1.0) / 3
    assert out.loss.item() == pytest.approx(expected)
    assert out.clipped.item() == pytest.approx(2 / 3)
    out.loss.backward()
    assert logps.grad is not None
    assert logps.grad[0].item() == 0.0 and logps.grad[1].item() == 0.0
    assert logps.grad[2].item() == pytest.approx(-math.exp(0.1) / 3)


def test_the_clip_keeps_the_pessimistic_side() -> None:
    # A > 0 and the ratio fell (0.61): min picks the unclipped term, the gradient flows
    logps = torch.tensor([[-0.5]], requires_grad=True)
    out = grpo_loss(logps, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1) > 0, 0.2)
    assert out.loss.item() == pytest.approx(-math.exp(-0.5))
    assert out.clipped.item() == 0.0


def test_kl_k3_is_zero_at_the_reference_and_positive_elsewhere() -> None:
    logps = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.0, -1.0]])
    kl = kl_k3(logps, ref)
    assert kl[0, 0].item() == 0.0
    assert kl[0, 1].item() == pytest.approx(math.exp(1.0) - 1.0 - 1.0)  # delta = 1


def test_kl_penalty_adds_beta_times_the_mean_k3() -> None:
    logps = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.0, -1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    without = grpo_loss(logps, logps, torch.tensor([1.0]), mask, 0.2)
    with_kl = grpo_loss(logps, logps, torch.tensor([1.0]), mask, 0.2, ref_logps=ref, kl_coef=0.1)
    k3 = (0.0 + (math.e - 2.0)) / 2
    assert with_kl.kl is not None and with_kl.kl.item() == pytest.approx(k3)
    assert with_kl.loss.item() == pytest.approx(without.loss.item() + 0.1 * k3)
    # coefficient 0: no penalty even with a reference
    zero = grpo_loss(logps, logps, torch.tensor([1.0]), mask, 0.2, ref_logps=ref, kl_coef=0.0)
    assert zero.kl is None and zero.loss.item() == pytest.approx(without.loss.item())


def test_token_and_sequence_aggregation_differ_on_unequal_lengths() -> None:
    per_token = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    # token: (4 + 4) / 5 = 1.6; sequence: (1 + 4) / 2 = 2.5
    assert aggregate(per_token, mask, "token").item() == pytest.approx(1.6)
    assert aggregate(per_token, mask, "sequence").item() == pytest.approx(2.5)
    # a micro-batch of a larger batch divides by the batch's total
    assert aggregate(per_token, mask, "token", total=10).item() == pytest.approx(0.8)
    assert aggregate(per_token, mask, "sequence", total=4).item() == pytest.approx(1.25)


def test_micro_batches_with_the_batch_total_add_up_to_the_whole_batch() -> None:
    torch.manual_seed(0)
    logps = torch.randn(4, 5)
    old = logps + 0.3 * torch.randn(4, 5)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]]) > 0
    aggregations: list[tuple[Aggregation, int]] = [("token", int(mask.sum())), ("sequence", 4)]
    for how, total in aggregations:
        whole = grpo_loss(logps, old, adv, mask, 0.2, how).loss
        parts = [
            grpo_loss(logps[i:j], old[i:j], adv[i:j], mask[i:j], 0.2, how, total=total).loss
            for i, j in ((0, 2), (2, 4))
        ]
        assert float(parts[0] + parts[1]) == pytest.approx(whole.item())


def test_sequences_without_signal_are_skipped_and_the_gradient_is_the_same() -> None:
    torch.manual_seed(1)
    theta = torch.randn(6, 5)  # one row of "log-probs" per sequence, the parameter
    old = theta.detach() + 0.2 * torch.randn(6, 5)
    adv = torch.tensor([0.0, 1.5, 0.0, -1.5, 0.0, 0.0])  # 2 with signal, 4 without
    mask = (
        torch.tensor(
            [[1] * 5, [1] * 4 + [0], [1] * 3 + [0] * 2, [1] * 5, [1] + [0] * 4, [1] * 2 + [0] * 3]
        )
        > 0
    )
    lengths = [int(m.sum()) for m in mask]
    for how, total in (("token", int(mask.sum())), ("sequence", 6)):
        grads = []
        for keep_all in (True, False):
            p = theta.clone().requires_grad_(True)
            chunks = micro_batches(lengths, adv.tolist(), 3, keep_all)
            assert len(chunks) == 3  # the accumulation count, whatever is skipped
            for c in chunks:
                loss = grpo_loss(p[c], old[c], adv[c], mask[c], 0.2, how, total=total).loss  # type: ignore[arg-type]
                loss.backward()
            grads.append(p.grad)
        assert torch.allclose(grads[0], grads[1])
    ran = micro_batches(lengths, adv.tolist(), 3, keep_all=False)
    assert sorted(i for c in ran for i in c if adv[i] != 0) == [1, 3]  # each once
    assert ran[2] == [4]  # left empty: the shortest sequence without signal, alone
    assert sorted(i for c in micro_batches(lengths, adv.tolist(), 3, True) for i in c) == list(
        range(6)
    )


def test_micro_batches_stay_within_the_batch_size_longest_first() -> None:
    lengths = [3, 9, 4, 7, 5, 8, 6]
    chunks = micro_batches(lengths, [1.0] * 7, 3, keep_all=False)  # 7 sequences, 3 of <= 3
    assert [len(c) for c in chunks] == [3, 2, 2]
    assert [lengths[i] for c in chunks for i in c] == sorted(lengths, reverse=True)
    with pytest.raises(ValueError):
        micro_batches(lengths, [1.0] * 7, 0, keep_all=False)


def test_step_prompts_are_deterministic_and_distinct_within_a_pass() -> None:
    first = [step_prompts(10, 4, seed=3, step=s) for s in range(6)]
    assert first == [step_prompts(10, 4, seed=3, step=s) for s in range(6)]  # resumed run
    for step in first:
        assert len(set(step)) == 4  # no prompt twice in a step
    # 10 prompts, 4 a step: a pass is 2 steps (8 distinct prompts), then a new shuffle
    assert len(set(first[0] + first[1])) == 8
    assert len(set(first[2] + first[3])) == 8
    assert first[2:4] != first[0:2]
    assert step_prompts(10, 4, seed=4, step=0) != first[0]
    wrapped = step_prompts(3, 8, seed=0, step=0)  # more per step than prompts: wraps
    assert len(wrapped) == 8 and set(wrapped) == {0, 1, 2}


def test_rank_share_gives_every_rank_the_same_count() -> None:
    items = [10, 11, 12, 13, 14]
    shares = [rank_share(items, 2, r) for r in range(2)]
    assert shares == [[10, 11, 12], [13, 14, 10]]
    assert rank_share(items, 1, 0) == items
