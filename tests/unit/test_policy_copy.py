"""GRPO publishes every step's policy while training goes on: the copy must be the merged
weights, and the trainee must keep its adapter (a tiny random Llama, no real model)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from rft_runtime.train.export import merged_state_dict


def tiny_lora_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    model = get_peft_model(
        LlamaForCausalLM(config),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    with torch.no_grad():  # a trained adapter: B is no longer zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    return model


def test_the_copy_has_the_merged_weights_and_the_adapter_stays() -> None:
    model = tiny_lora_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _, state = merged_state_dict(model, torch.float32)
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    expected.pop("lm_head.weight")  # tied: the loaders re-tie it
    assert set(state) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value)
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(state[key], before[f"base_model.model.{key[:-7]}.base_layer.weight"])
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # trainee untouched
    assert any("lora_A" in k for k in after)


def test_the_copy_loads_as_a_plain_model(tmp_path: Path) -> None:
    model = tiny_lora_model()
    base, state = merged_state_dict(model, torch.bfloat16)
    base.save_pretrained(tmp_path, state_dict=state, safe_serialization=True)
    loaded = LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        want = copy.deepcopy(model).merge_and_unload()(input_ids=ids).logits
        got = loaded(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=0.05, rtol=0.05)  # bf16 storage
