"""The scoring Job's I/O edges without a model: prompt loading, formatting, resume
bookkeeping, atomic writes, the termination message, pass@k, and an unreachable endpoint."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest

from rft_runtime.config.filter_spec import FilterSpec
from rft_runtime.config.jobs import FailureSummary, PromptFormat, PromptSource
from rft_runtime.config.termination import fit_message, termination_log_path
from rft_runtime.files import atomic_write_text
from rft_runtime.filters import apply
from rft_runtime.http_retry import backoff
from rft_runtime.jsonl import atomic_write_jsonl
from rft_runtime.score.client import parse_response
from rft_runtime.score.data import PromptsUnreadable, load_prompts
from rft_runtime.score.formatting import model_input, request_body
from rft_runtime.score.outputs import dpo_rows, eval_metrics, sft_rows, to_samples
from rft_runtime.score.passk import mean_pass_at_k, pass_at_k
from rft_runtime.score.progress_log import ProgressLog

ROWS = [{"q": f"What is {i} + 1?", "a": i + 1, "key": f"k{i}"} for i in range(5)]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- loading ---------------------------------------------------------------------------


def test_load_jsonl_default_ids_and_max_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    rows = load_prompts(
        PromptSource(path=str(path), prompt_field="q", answer_field="a", max_rows=3)
    )
    assert [(r.id, r.prompt, r.answer) for r in rows] == [
        ("0", "What is 0 + 1?", "1"),
        ("1", "What is 1 + 1?", "2"),
        ("2", "What is 2 + 1?", "3"),
    ]


def test_iteration_windows_use_every_prompt_once_before_any_twice(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    source = PromptSource(path=str(path), prompt_field="q", answer_field="a", per_iteration=2)
    windows = [
        [r.id for r in load_prompts(source.model_copy(update={"iteration": k}))] for k in range(4)
    ]
    assert windows == [["0", "1"], ["2", "3"], ["4", "0"], ["1", "2"]]
    # a window as large as the file, or none, is the whole file in its order
    for size in (None, 5, 9):
        whole = load_prompts(source.model_copy(update={"per_iteration": size, "iteration": 3}))
        assert [r.id for r in whole] == ["0", "1", "2", "3", "4"]
    # the window is taken after maxPrompts, and ids are checked across the whole file
    capped = source.model_copy(update={"max_rows": 3, "iteration": 1})
    assert [r.id for r in load_prompts(capped)] == ["2", "0"]
    dup = write_jsonl(tmp_path / "dup.jsonl", [*ROWS, ROWS[0]])
    with pytest.raises(PromptsUnreadable, match="duplicate id"):
        load_prompts(
            PromptSource(
                path=str(dup), prompt_field="q", answer_field="a", id_field="key", per_iteration=2
            )
        )


def test_load_parquet_with_id_field(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "p.parquet")
    source = PromptSource(
        path=str(tmp_path / "p.parquet"), prompt_field="q", answer_field="a", id_field="key"
    )
    rows = load_prompts(source)
    assert [r.id for r in rows] == ["k0", "k1", "k2", "k3", "k4"]
    assert rows[4].answer == "5"


def test_load_datasets_directory(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "ds"))
    rows = load_prompts(PromptSource(path=str(tmp_path / "ds"), prompt_field="q", answer_field="a"))
    assert len(rows) == 5 and rows[2].prompt == "What is 2 + 1?"


def test_load_errors_name_the_fix(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    with pytest.raises(PromptsUnreadable, match=r"no field 'question'.*promptField"):
        load_prompts(PromptSource(path=str(path), prompt_field="question", answer_field="a"))
    with pytest.raises(PromptsUnreadable, match="does not exist"):
        load_prompts(PromptSource(path=str(tmp_path / "missing.jsonl")))
    dup = write_jsonl(tmp_path / "dup.jsonl", [ROWS[0], ROWS[0]])
    with pytest.raises(PromptsUnreadable, match="duplicate id"):
        load_prompts(
            PromptSource(path=str(dup), prompt_field="q", answer_field="a", id_field="key")
        )
    (tmp_path / "bad.jsonl").write_text('{"q": 1, "answer": 2}\n{oops\n')
    with pytest.raises(PromptsUnreadable, match=r"bad\.jsonl:2"):
        load_prompts(PromptSource(path=str(tmp_path / "bad.jsonl"), prompt_field="q"))


# -- formatting ------------------------------------------------------------------------


def test_chat_and_raw_formatting_never_send_a_seed() -> None:
    fmt = PromptFormat(system_prompt="Be brief.", prompt_template="Q: {prompt}\nA: {x}")
    path, body = request_body(fmt, "policy", "1+1", n=4, temperature=1.0, top_p=1.0, max_tokens=8)
    assert path == "chat/completions"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: 1+1\nA: {x}"},
    ]
    assert body["n"] == 4 and "seed" not in body
    raw = PromptFormat(system_prompt="Be brief.", use_chat_template=False)
    path, body = request_body(raw, "policy", "1+1", n=1, temperature=0, top_p=1, max_tokens=8)
    assert (path, body["prompt"]) == ("completions", "Be brief.\n\n1+1")
    assert model_input(PromptFormat(), "hi") == [{"role": "user", "content": "hi"}]


def test_parse_response_both_shapes() -> None:
    chat = {
        "choices": [
            {"index": 1, "message": {"content": "b"}, "finish_reason": "length"},
            {"index": 0, "message": {"content": None}, "finish_reason": "stop"},
        ],
        "usage": {"completion_tokens": 9},
    }
    generation = parse_response("chat/completions", chat)
    assert generation.texts == ["", "b"] and generation.completion_tokens == 9
    assert generation.finish_reasons == ["stop", "length"]
    assert parse_response("completions", {"choices": [{"text": "x"}]}).texts == ["x"]
    assert [backoff(i) for i in range(3)] == [0.5, 1.0, 2.0] and backoff(20) == 30.0


# -- resume bookkeeping ------------------------------------------------------------------


def test_progress_log_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "progress" / "train.jsonl"
    with ProgressLog(path) as log:
        log.append({"id": "a", "v": 1})
        log.append({"id": "b", "v": 2})
        log.append({"id": "a", "v": 99})  # a second record of an id is ignored
    with path.open("a") as handle:
        handle.write('{"id": "c", "v"')  # killed mid-write
    with ProgressLog(path) as log:
        assert set(log.records) == {"a", "b"} and log.records["a"]["v"] == 1
        assert "c" not in log
        log.append({"id": "c", "v": 3})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "c"]


def test_progress_log_treats_a_record_without_id_as_torn(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a"}\n{"no id": 1}\n{"id": "b"}\n')
    assert set(ProgressLog(path).records) == {"a"}
    assert path.read_text() == '{"id": "a"}\n'


def test_progress_log_first_record_wins_on_disk_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "v": 1}\n{"id": "a", "v": 2}\n')
    assert ProgressLog(path).records == {"a": {"id": "a", "v": 1}}


# -- atomic writes and the termination message ----------------------------------------


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "sft.jsonl"
    atomic_write_jsonl(target, [{"a": 1}, {"b": "ü"}])
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "ü"}\n'

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        atomic_write_jsonl(target, [{"a": 2}, {"bad": Boom()}])
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "ü"}\n'  # untouched
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["sft.jsonl"]


def test_termination_message_fits_in_4kib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    big = {
        "kind": "score",
        "iteration": 0,
        "evalScores": {f"set{i}": 0.5 for i in range(400)},
        "seconds": {"total": 1.0},
    }
    text = fit_message(big)
    assert len(text.encode()) < 4096 and json.loads(text)["kind"] == "score"
    failure = FailureSummary(reason="X", message="m" * 10000).to_wire()
    assert len(fit_message(failure).encode()) < 4096
    monkeypatch.setenv("RFT_TERMINATION_LOG", str(tmp_path / "term"))
    assert termination_log_path() == tmp_path / "term"


# -- pass@k and the outputs ------------------------------------------------------------


@pytest.mark.parametrize(("n", "c", "k"), [(5, 0, 1), (5, 2, 1), (5, 2, 3), (6, 3, 4), (4, 4, 2)])
def test_pass_at_k_matches_brute_force(n: int, c: int, k: int) -> None:
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(combinations(outcomes, k))
    expected = sum(any(s) for s in subsets) / len(subsets)
    assert math.isclose(pass_at_k(n, c, k), expected)


def test_pass_at_k_edges() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(3, 1, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)
    assert mean_pass_at_k([(1, 1), (1, 0)], 2) is None
    assert mean_pass_at_k([(2, 1), (2, 0)], 2) == pytest.approx(0.5)


def record(pid: str, *rewards: float) -> dict[str, object]:
    completions = [
        {
            "index": i,
            "text": f"{pid}-{i}",
            "reward": r,
            "rewards": {"answer": r},
            "reasons": {},
            "correct": r >= 1.0,
            "finish_reason": "stop",
        }
        for i, r in enumerate(rewards)
    ]
    return {"id": pid, "prompt": f"q{pid}", "answer": "1", "completions": completions, "tokens": 5}


def test_outputs_from_records() -> None:
    records = [record("a", 1.0, 0.0), record("b", 0.0, 0.0), {**record("c"), "error": "HTTP 400"}]
    metrics = eval_metrics(records, [1, 2])
    assert metrics["pass@1"] == pytest.approx(0.5 / 3)  # the rejected prompt counts as failed
    assert metrics["pass@2"] == pytest.approx(1 / 3)
    assert metrics["errors"] == 1 and metrics["samples"] == 4
    result = apply(FilterSpec(rejected="lowest"), 1.0, to_samples(records))
    fmt = PromptFormat()
    assert sft_rows(records, result, fmt) == [
        {
            "prompt_id": "a",
            "messages": [{"role": "user", "content": "qa"}],
            "completion": "a-0",
            "reward": 1.0,
        }
    ]
    [pair] = dpo_rows(records, result, PromptFormat(system_prompt="S", use_chat_template=False))
    assert pair["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "qa"},
    ]
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == ("S\n\nqa", "a-0", "a-1")
    assert (pair["chosen_reward"], pair["rejected_reward"]) == (1.0, 0.0)


# -- an endpoint that never answers ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_fails_clearly(tmp_path: Path) -> None:
    prompts = write_jsonl(tmp_path / "p.jsonl", ROWS)
    config = {
        "run": "r",
        "iteration": 0,
        "outputDir": str(tmp_path / "out"),
        "policy": {
            "baseUrl": f"http://127.0.0.1:{free_port()}/v1",
            "model": "policy",
            "startupWaitSeconds": 1.5,
        },
        "train": {"path": str(prompts), "promptField": "q", "answerField": "a"},
        "rewards": [{"name": "answer", "type": "math"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(config))
    term = tmp_path / "termination-log"
    done = subprocess.run(
        [sys.executable, "-m", "rft_runtime.score", "--config", str(tmp_path / "c.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RFT_TERMINATION_LOG": str(term)},
    )
    assert done.returncode != 0
    assert "EndpointUnreachable" in done.stderr and "startupWaitSeconds" in done.stderr
    summary = FailureSummary.model_validate_json(term.read_text())
    assert summary.reason == "EndpointUnreachable"
    assert "did not answer within 1.5s" in summary.message
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_missing_teacher_key_fails_with_summary(tmp_path: Path) -> None:
    prompts = write_jsonl(tmp_path / "p.jsonl", ROWS)
    config = {
        "run": "r",
        "iteration": 0,
        "outputDir": str(tmp_path / "out"),
        "policy": {"baseUrl": "http://127.0.0.1:9/v1", "model": "policy"},
        "teacher": {"baseUrl": "http://127.0.0.1:9/v1", "model": "big", "apiKeyEnv": "NO_SUCH_KEY"},
        "train": {"path": str(prompts), "promptField": "q", "answerField": "a"},
        "rewards": [{"name": "answer", "type": "math"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(config))
    term = tmp_path / "termination-log"
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "rft_runtime.score", "--config", str(tmp_path / "c.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "RFT_TERMINATION_LOG": str(term)},
    )
    assert done.returncode == 1
    summary = FailureSummary.model_validate_json(term.read_text())
    assert summary.reason == "MissingApiKey" and "NO_SUCH_KEY" in summary.message


def test_invalid_config_fails_with_summary(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"run": "r", "iteration": 0, "typo": 1}))
    term = tmp_path / "termination-log"
    done = subprocess.run(
        [sys.executable, "-m", "rft_runtime.score", "--config", str(tmp_path / "c.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RFT_TERMINATION_LOG": str(term)},
    )
    assert done.returncode == 1
    assert FailureSummary.model_validate_json(term.read_text()).reason == "InvalidConfig"


def test_the_sampled_tokens_and_logprobs_are_read_when_asked_for() -> None:
    from rft_runtime.score.client import parse_response

    chat = {
        "choices": [
            {
                "index": 0,
                "message": {"content": "6"},
                "finish_reason": "stop",
                "logprobs": {
                    "content": [
                        {"token": "token_id:21", "logprob": -0.25},
                        {"token": "token_id:2", "logprob": -0.5},
                    ]
                },
            }
        ],
        "usage": {"completion_tokens": 2},
    }
    assert parse_response("chat/completions", chat).extra["tokens"] == [([21, 2], [-0.25, -0.5])]
    text = {
        "choices": [
            {
                "text": "6",
                "logprobs": {"tokens": ["token_id:21"], "token_logprobs": [-0.25]},
            }
        ]
    }
    assert parse_response("completions", text).extra["tokens"] == [([21], [-0.25])]
    plain = {"choices": [{"text": "6", "logprobs": {"tokens": ["6"], "token_logprobs": [-1.0]}}]}
    assert "tokens" not in parse_response("completions", plain).extra  # names, not ids
    assert "tokens" not in parse_response("completions", {"choices": [{"text": "6"}]}).extra
