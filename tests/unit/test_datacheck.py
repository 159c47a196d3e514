"""Bad data fails the scoring Job before it contacts any sampler, with `file:line: field:
problem` for every problem; JSONL written by the scoring side reads back identically on the
training side."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft_runtime.config.jobs import FailureSummary
from rft_runtime.datacheck import FileCheck, check_file
from rft_runtime.jsonl import atomic_write_jsonl, dumps_lines, loads_lines, read_jsonl
from rft_runtime.score.__main__ import main as score_main
from rft_runtime.score.progress_log import ProgressLog
from rft_runtime.train.data import read_rows
from rft_runtime.train.failure import TrainFailure

GOOD = (
    '{"id": "a", "q": "What is 1 + 1?", "a": "2"}\n{"id": "b", "q": "What is 2 + 2?", "a": "4"}\n'
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that accepts connections, so a job that contacts it would be noticed."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def contacted(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def score_config(tmp_path: Path, port: int, train: Path, **train_extra: object) -> Path:
    config = {
        "run": "r",
        "iteration": 0,
        "outputDir": str(tmp_path / "out"),
        "policy": {"baseUrl": f"http://127.0.0.1:{port}/v1", "model": "policy"},
        "train": {
            "path": str(train),
            "promptField": "q",
            "answerField": "a",
            "idField": "id",
            "maxRowBytes": 4096,
            **train_extra,
        },
        "evaluation": {
            "sets": [{"name": "main", "source": {"path": str(tmp_path / "eval.jsonl")}}]
        },
        "rewards": [{"name": "answer", "type": "math"}],
    }
    (tmp_path / "eval.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\n', encoding="utf-8")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


# (id, train file bytes, fragments the failure message must contain)
BAD_DATA = [
    (
        "invalid-utf8",
        GOOD.encode() + b'{"id": "c", "q": "caf\xe9", "a": "1"}\n',
        ["train.jsonl:3: (line): not valid UTF-8"],
    ),
    ("not-json", (GOOD + "{id: c}\n").encode(), ["train.jsonl:3: (line): not JSON"]),
    (
        "not-an-object",
        (GOOD + "[1, 2]\n").encode(),
        ["train.jsonl:3: (line): expected a JSON object, got a list"],
    ),
    (
        "scalar-row",
        (GOOD + "42\n").encode(),
        ["train.jsonl:3: (line): expected a JSON object, got a number"],
    ),
    (
        "missing-prompt",
        (GOOD + '{"id": "c", "a": "1"}\n').encode(),
        ["train.jsonl:3: q: missing", "data.promptField"],
    ),
    (
        "missing-answer",
        (GOOD + '{"id": "c", "q": "x"}\n').encode(),
        ["train.jsonl:3: a: missing", "data.answerField"],
    ),
    (
        "missing-id",
        (GOOD + '{"q": "x", "a": "1"}\n').encode(),
        ["train.jsonl:3: id: missing", "data.idField"],
    ),
    (
        "duplicate-id",
        (GOOD + '{"id": "a", "q": "x", "a": "1"}\n').encode(),
        ["train.jsonl:3: id: duplicate id 'a' (first on line 1)"],
    ),
    ("empty-file", b"", ["train.jsonl: (file): has no rows"]),
    ("only-blank-lines", b"\n\n  \n", ["train.jsonl: (file): has no rows"]),
    (
        "row-too-long",
        (GOOD + json.dumps({"id": "c", "q": "x" * 5000, "a": "1"}) + "\n").encode(),
        ["train.jsonl:3: (line):", "over the limit of 4096 bytes", "maxRowBytes"],
    ),
    (
        "line-numbers-count-blank-lines",
        ("\n\n" + GOOD + "\n" + '{"id": "c"}\n').encode(),
        ["train.jsonl:6: q: missing"],
    ),
    (
        "empty-prompt",
        (GOOD + '{"id": "c", "q": "", "a": "1"}\n').encode(),
        ["train.jsonl:3: q: expected non-empty text"],
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA]
)
def test_bad_data_fails_the_scoring_job_before_sampling(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    listener: socket.socket,
    data: bytes,
    expected: list[str],
) -> None:
    train = tmp_path / "train.jsonl"
    train.write_bytes(data)
    term = tmp_path / "termination-log"
    monkeypatch.setenv("RFT_TERMINATION_LOG", str(term))
    config = score_config(tmp_path, listener.getsockname()[1], train)
    assert score_main(["--config", str(config)]) == 1
    summary = FailureSummary.model_validate_json(term.read_text(encoding="utf-8"))
    assert summary.reason == "InvalidData"
    for fragment in expected:
        assert fragment in summary.message, summary.message
    assert not contacted(listener)
    assert not (tmp_path / "out").exists()


def test_every_problem_is_reported_and_the_message_shows_the_first_ten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    lines = [GOOD] + [f'{{"id": "x{i}", "q": "p"}}\n' for i in range(25)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(lines), encoding="utf-8")
    problems = check_file(FileCheck(str(train), "q", "a", "id"))
    assert [p.line for p in problems] == list(range(3, 28))
    term = tmp_path / "termination-log"
    monkeypatch.setenv("RFT_TERMINATION_LOG", str(term))
    assert (
        score_main(["--config", str(score_config(tmp_path, listener.getsockname()[1], train))]) == 1
    )
    message = FailureSummary.model_validate_json(term.read_text(encoding="utf-8")).message
    assert message.startswith("25 data problems in ")
    assert "train.jsonl:12: a: missing" in message and "train.jsonl:13:" not in message
    assert "... and 15 more" in message


def test_an_eval_file_and_a_reward_column_are_checked_too(tmp_path: Path) -> None:
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text('{"question": "1+1?", "answer": "2"}\n', encoding="utf-8")
    problems = check_file(FileCheck(str(eval_file), "prompt", "answer", extra_fields=("tests",)))
    assert [p.render() for p in problems] == [
        f"{eval_file}:1: prompt: missing (the row has: answer, question); add it or set "
        "data.promptField to the column holding the prompt",
        f"{eval_file}:1: tests: missing (the row has: answer, question); add it, or change the "
        "answerField of the reward that reads it",
    ]


def test_real_entry_point_reports_invalid_data(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_bytes(b"\xff\xfe not utf-8\n")
    config = score_config(tmp_path, 9, train)
    term = tmp_path / "termination-log"
    done = subprocess.run(
        [sys.executable, "-m", "rft_runtime.score", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RFT_TERMINATION_LOG": str(term)},
    )
    assert done.returncode == 1
    assert "InvalidData" in done.stderr and "Traceback" not in done.stderr
    assert "train.jsonl:1: (line): not valid UTF-8" in done.stderr


# -- one JSONL pair on both sides -------------------------------------------------------

TRICKY = ["a\u2028b", "c\u0085d", "e\u2029f", "g\rh", "i\x0bj\x0ck", "\x1c\x1d\x1e", "\ud800 lone"]


def test_separators_and_lone_surrogates_round_trip(tmp_path: Path) -> None:
    rows = [{"prompt_id": str(i), "messages": [], "completion": c} for i, c in enumerate(TRICKY)]
    atomic_write_jsonl(tmp_path / "sft.jsonl", rows)
    assert read_rows(tmp_path / "sft.jsonl") == rows
    with ProgressLog(tmp_path / "progress.jsonl") as log:
        for row in rows:
            log.append({"id": row["prompt_id"], "completion": row["completion"]})
    with ProgressLog(tmp_path / "progress.jsonl") as again:
        assert [r["completion"] for r in again.records.values()] == TRICKY


def test_training_side_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_bytes(b'{"completion": "ok"}\n\n{"completion": "\xc3"}\n')
    with pytest.raises(TrainFailure, match=r"sft\.jsonl:3: not valid UTF-8"):
        read_rows(path)
    path.write_text('{"completion": "ok"}\n7\n', encoding="utf-8")
    with pytest.raises(TrainFailure, match=r"sft\.jsonl:2: expected a JSON object"):
        read_rows(path)


SEPARATORS = "\n\r\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e"
ANY_CHAR = st.one_of(st.characters(exclude_categories=[]), st.sampled_from(SEPARATORS))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=ANY_CHAR), min_size=1, max_size=4))
def test_any_completion_written_by_scoring_is_read_back_by_training(
    completions: list[str],
) -> None:
    rows = [
        {"prompt_id": str(i), "messages": [], "completion": c} for i, c in enumerate(completions)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sft.jsonl"
        atomic_write_jsonl(path, rows)  # the scoring Job's writer
        assert read_rows(path) == rows  # the training Job's reader
        assert path.read_bytes().count(b"\n") == len(rows)  # one row, one line
    assert loads_lines(dumps_lines(rows)) == rows


def test_read_jsonl_skips_blank_lines_but_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('\n{"a": 1}\r\n\n{"a": 2}', encoding="utf-8")
    assert list(read_jsonl(path)) == [(2, {"a": 1}), (4, {"a": 2})]
