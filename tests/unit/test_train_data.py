"""Training data without DeepSpeed: chat-template prompts, completion-only labels, batching,
and the early errors (empty dataset, no room for completions, missing init checkpoint)."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rft_runtime.config.jobs import TrainJobConfig
from rft_runtime.train import data as D
from rft_runtime.train.__main__ import main
from rft_runtime.train.loading import lr_factor
from rft_runtime.train.losses import dpo_loss, first_scored_column, sequence_logps, sft_loss

TEMPLATE = (
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    """A character-level tokenizer built here: hermetic, and one token per character."""
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


def sft_row(i: int, completion: str = "42") -> dict:
    messages = [{"role": "user", "content": f"q{i}"}]
    return {"prompt_id": f"p{i}", "messages": messages, "completion": completion, "reward": 1.0}


def test_sft_labels_cover_completion_and_eos_only(tokenizer):
    data = D.tokenize([sft_row(7, "ab")], tokenizer, "sft", max_len=64)
    seq = data.examples[0].chosen
    prompt = "[user]q7[assistant]"
    assert len(seq.input_ids) == len(prompt) + 3  # 'a', 'b', EOS
    assert seq.labels[: len(prompt)] == [D.IGNORE] * len(prompt)
    assert seq.labels[len(prompt) :] == seq.input_ids[len(prompt) :]
    assert seq.input_ids[-1] == tokenizer.eos_token_id
    assert "".join(tokenizer.convert_ids_to_tokens(seq.input_ids[: len(prompt)])) == prompt


def test_linear_learning_rate_falls_to_a_last_nonzero_step():
    linear = lr_factor("linear", 4)
    assert [linear(done) for done in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert linear(10) == 0.25  # past the end (wrapped batches): never 0, never negative
    assert {lr_factor("constant", 4)(done) for done in range(6)} == {1.0}


def test_a_completion_cut_at_the_token_limit_gets_no_eos(tokenizer):
    """The sampler stopped it, not the model: training must not teach stopping there."""
    rows = [sft_row(1, "ab"), {**sft_row(1, "ab"), "completion_finished": False}]
    finished, cut = (e.chosen for e in D.tokenize(rows, tokenizer, "sft", max_len=64).examples)
    assert finished.input_ids[-1] == tokenizer.eos_token_id
    assert cut.input_ids == finished.input_ids[:-1]
    assert tokenizer.eos_token_id not in cut.input_ids


def test_a_prompt_sent_without_the_chat_template_is_trained_as_sent(tokenizer):
    """useChatTemplate false: the sampler got the raw text, so training must see it too."""
    row = {**sft_row(3, "ab"), "prompt": "Q: 1+1="}
    seq = D.tokenize([row], tokenizer, "sft", max_len=64).examples[0].chosen
    assert "".join(tokenizer.convert_ids_to_tokens(seq.input_ids[:7])) == "Q: 1+1="
    assert seq.labels[:7] == [D.IGNORE] * 7 and len(seq.input_ids) == 7 + 3


def test_truncation_is_counted_and_prompt_only_rows_dropped(tokenizer):
    rows = [sft_row(1, "x" * 50), sft_row(2, "short")]
    data = D.tokenize(rows, tokenizer, "sft", max_len=30)  # prompts are 19 characters
    assert data.truncated == 1 and data.dropped == 0
    assert all(len(e.chosen.input_ids) <= 30 for e in data.examples)
    # max_len smaller than the prompt: nothing left to learn, the row is dropped
    data = D.tokenize(rows, tokenizer, "sft", max_len=10)
    assert data.dropped == 2 and not data.examples


def test_dpo_pairs_share_the_prompt(tokenizer):
    row = {
        "prompt_id": "p",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        "chosen": "yes",
        "rejected": "no",
        "chosen_reward": 1.0,
        "rejected_reward": 0.0,
    }
    example = D.tokenize([row], tokenizer, "dpo", max_len=64).examples[0]
    assert example.rejected is not None
    n_prompt = len("[system]s[user]u[assistant]")
    assert example.chosen.input_ids[:n_prompt] == example.rejected.input_ids[:n_prompt]
    batch = D.batch_for([example], [0], tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 2  # chosen row, then rejected row
    assert batch["attention_mask"][1].sum() == n_prompt + 3  # "no" + EOS


def test_wrong_method_for_dataset_names_the_knob(tokenizer):
    with pytest.raises(D.TrainFailure, match=r"training\.method"):
        D.tokenize([sft_row(1)], tokenizer, "dpo", max_len=64)


def test_collate_pads_right_without_loss_or_attention():
    seqs = [D.Sequence([5, 6, 7], [D.IGNORE, 6, 7]), D.Sequence([5, 8], [D.IGNORE, 8])]
    batch = D.collate(seqs, pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 8, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"][1].tolist() == [D.IGNORE, 8, D.IGNORE]


def test_length_grouped_batches_are_deterministic_and_complete():
    lengths = [(i * 37) % 101 for i in range(200)]
    batches = D.length_grouped_batches(lengths, 8, seed=3, epoch=1, group=5)
    assert batches == D.length_grouped_batches(lengths, 8, seed=3, epoch=1, group=5)
    assert batches != D.length_grouped_batches(lengths, 8, seed=3, epoch=2, group=5)
    assert sorted(i for b in batches for i in b) == list(range(200))
    # grouping: padding per batch is much smaller than in a random batching
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread / len(batches) < 30


def test_rank_batches_equal_counts_multiple_of_accumulation():
    batches = [[i] for i in range(7)]
    per_rank = [D.rank_batches(batches, world=2, rank=r, accumulation=3) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 6
    assert {b[0] for r in per_rank for b in r} == set(range(7))  # nothing left out
    assert D.steps_per_epoch(7, batch_size=1, world=2, accumulation=3) == 2


def test_losses():
    import torch

    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = 10.0  # predicts token 2 at position 1 with confidence
    good = sft_loss(logits, torch.tensor([[D.IGNORE, 2, D.IGNORE]]))
    bad = sft_loss(logits, torch.tensor([[D.IGNORE, 3, D.IGNORE]]))
    assert good < 0.01 < bad
    zero = torch.zeros(2)
    loss, margin, acc = dpo_loss(zero + 1, zero - 1, zero, zero, beta=0.5)
    assert margin == pytest.approx(1.0) and acc == 1.0
    assert loss == pytest.approx(float(-torch.nn.functional.logsigmoid(torch.tensor(1.0))))


def run_main(tmp_path: Path, monkeypatch, **overrides) -> tuple[int, dict]:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("RFT_TERMINATION_LOG", str(log))
    config = {
        "run": "r",
        "iteration": 0,
        "datasetPath": str(tmp_path / "sft.jsonl"),
        "initModelPath": str(tmp_path / "model"),
        "outputDir": str(tmp_path / "out"),
        **overrides,
    }
    TrainJobConfig.model_validate(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code = main(["--config", str(path)])
    text = log.read_text()
    assert len(text.encode()) < 4096
    return code, json.loads(text)


def test_missing_init_checkpoint_fails_clearly(tmp_path, monkeypatch, capsys):
    code, summary = run_main(tmp_path, monkeypatch)
    assert code != 0
    assert summary["kind"] == "error" and summary["reason"] == "InitCheckpointMissing"
    assert "training.initFrom" in summary["message"]
    assert "InitCheckpointMissing" in capsys.readouterr().err


def test_sft_job_needs_no_reward_libraries(tmp_path):
    """Only GRPO scores samples: an SFT or DPO Job does not import the rewards (math-verify
    and the rest), so a training image without them still trains."""
    config = tmp_path / "config.json"
    paths = {"outputDir": tmp_path, "datasetPath": tmp_path / "d", "initModelPath": tmp_path / "m"}
    config.write_text(
        json.dumps({"run": "r", "iteration": 0, **{k: str(v) for k, v in paths.items()}})
    )
    script = (
        "import sys\nfrom rft_runtime.train.__main__ import main\n"
        f"code = main(['--config', {str(config)!r}])\n"
        "print(code, sorted(m for m in sys.modules if m.startswith(('rft_runtime.rewards', "
        "'rft_runtime.score', 'math_verify'))))"
    )
    env = {**os.environ, "RFT_TERMINATION_LOG": str(tmp_path / "termination-log")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    # it got as far as the init checkpoint (exit 2: a permanent failure) with no reward loaded
    assert "InitCheckpointMissing" in out.stderr, out.stderr[-2000:]
    assert out.stdout.split(maxsplit=1) == ["2", "[]\n"], out.stdout


def test_empty_dataset_fails_clearly(tmp_path, monkeypatch, tokenizer):
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "sft.jsonl").write_text("\n")
    code, summary = run_main(tmp_path, monkeypatch)
    assert code != 0 and summary["reason"] == "EmptyDataset"
    assert "filter.minReward" in summary["message"]


def test_only_overlong_prompts_fail_clearly(tmp_path, monkeypatch, tokenizer):
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "sft.jsonl").write_text(json.dumps(sft_row(1)) + "\n")
    code, summary = run_main(tmp_path, monkeypatch, maxSeqLen=4)
    assert code != 0 and summary["reason"] == "SequencesTooLong"
    assert "training.maxSeqLen" in summary["message"]


def test_out_of_memory_is_recognised():
    import torch

    from rft_runtime.train.failure import OOM_MESSAGE, is_out_of_memory

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert "batchSize" in OOM_MESSAGE and "mode: lora" in OOM_MESSAGE


def test_logits_only_from_the_first_scored_column_give_the_same_losses():
    """Training skips the vocabulary projection of prompt columns: the per-row log-probs
    must be exactly those of the full logits."""
    import torch

    torch.manual_seed(0)
    labels = torch.full((3, 9), D.IGNORE)
    labels[0, 5:8] = torch.tensor([4, 1, 2])  # prompts of different lengths, right padding
    labels[1, 4:9] = torch.tensor([3, 3, 0, 1, 2])
    labels[2, 6:7] = torch.tensor([5])
    logits = torch.randn(3, 9, 7)
    start = first_scored_column(labels)
    assert start == 3  # row 1's first target (column 4) is predicted by column 3
    full, counts = sequence_logps(logits, labels)
    cut, cut_counts = sequence_logps(logits[:, start:], labels[:, start:])
    assert torch.allclose(full, cut) and torch.equal(counts, cut_counts)
    assert first_scored_column(torch.full((2, 4), D.IGNORE)) == 0
