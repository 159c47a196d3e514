"""Every reward type on good, wrong and malformed completions; combination; the sandbox."""

from __future__ import annotations

import time

import pytest

from rft_runtime.config.spec import RewardSpec
from rft_runtime.rewards import REGISTRY, is_correct, score_batch, score_one
from rft_runtime.rewards.base import MAX_COMPLETION_CHARS
from rft_runtime.rewards.normalized import normalize
from rft_runtime.rewards.numeric import numbers
from rft_runtime.rewards.python import run_sandboxed


def spec(type_: str, **kw: object) -> RewardSpec:
    return RewardSpec(name=kw.pop("name", type_), type=type_, **kw)  # type: ignore[arg-type]


def value(type_: str, completion: object, answer: object, **kw: object) -> float:
    return REGISTRY[type_](spec(type_, **kw), "prompt", completion, answer).value


MALFORMED = [
    "",
    "   \n\t",
    "x" * (MAX_COMPLETION_CHARS + 1),
    b"\xff\xfe\x80 garbage \xc3",
    "bad \udcff surrogate",
    "nul\x00byte 42",
    None,
]
TYPES = ["math", "exact", "normalized", "numeric", "regex", "python"]
EXTRA = {"regex": {"pattern": r"\d+"}, "python": {"source": "def reward(p, c, a):\n  return 1.0\n"}}


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("completion", MALFORMED, ids=range(len(MALFORMED)))
def test_unscorable_completion_is_zero_with_reason(type_: str, completion: object) -> None:
    result = REGISTRY[type_](spec(type_, **EXTRA.get(type_, {})), "p", completion, "42")
    assert result.value == 0.0
    assert result.reason


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("The answer is 42.", "42", 1.0),
        ("so the result is $\\boxed{\\frac{1}{2}}$", "0.5", 1.0),
        ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", 1.0),
        ("we get $x^2 + 1$", "1 + x^2", 1.0),
        ("The answer is 41.", "42", 0.0),
    ],
)
def test_math_equivalence(completion: str, answer: str, expected: float) -> None:
    assert value("math", completion, answer) == expected


def test_math_no_answer_has_reason() -> None:
    result = REGISTRY["math"](spec("math"), "p", "I do not know.", "42")
    assert result.value == 0.0
    assert result.reason == "no answer found in completion"


def test_exact() -> None:
    assert value("exact", " 42\n", "42") == 1.0
    assert value("exact", "42.", "42") == 0.0
    assert value("exact", "Paris", "paris") == 0.0


def test_normalized() -> None:
    assert normalize("  Hello,   WORLD!! ") == "hello world"
    assert value("normalized", "The Eiffel-Tower.", "the eiffeltower") == 1.0
    assert value("normalized", "Paris, France", "paris") == 0.0


def test_numeric_last_number_and_tolerance() -> None:
    assert numbers("From 3 apples and -1,234.5 pears to 1e3") == [3.0, -1234.5, 1000.0]
    assert value("numeric", "3 + 4 = 7", "7") == 1.0
    assert value("numeric", "7 is wrong, it is 8", "7") == 0.0
    assert value("numeric", "about 101", "100", tolerance=0.02) == 1.0
    assert value("numeric", "about 103", "100", tolerance=0.02) == 0.0
    result = REGISTRY["numeric"](spec("numeric"), "p", "seven", "7")
    assert (result.value, result.reason) == (0.0, "no number found in completion")
    assert REGISTRY["numeric"](spec("numeric"), "p", "7", "n/a").reason


def test_regex() -> None:
    fmt = r"<answer>\s*\d+\s*</answer>"
    assert value("regex", "think... <answer> 12 </answer>", "12", pattern=fmt) == 1.0
    assert value("regex", "12", "12", pattern=fmt) == 0.0
    bad = REGISTRY["regex"](spec("regex", pattern="(unclosed"), "p", "x", "x")
    assert bad.value == 0.0
    assert bad.reason is not None and "invalid pattern" in bad.reason


def test_python_reward_runs_user_code() -> None:
    source = "def reward(prompt, completion, answer):\n    return float(answer in completion)\n"
    assert value("python", "it is 42", "42", source=source) == 1.0
    assert value("python", "it is 41", "42", source=source) == 0.0


def test_python_reward_exceptions_and_bad_returns() -> None:
    raising = "def reward(p, c, a):\n    raise ValueError('boom')\n"
    result = REGISTRY["python"](spec("python", source=raising), "p", "x", "y")
    assert result.value == 0.0 and result.reason is not None and "boom" in result.reason
    no_number = "def reward(p, c, a):\n    return 'high'\n"
    assert REGISTRY["python"](spec("python", source=no_number), "p", "x", "y").value == 0.0
    nan = "def reward(p, c, a):\n    return float('nan')\n"
    assert REGISTRY["python"](spec("python", source=nan), "p", "x", "y").reason


def test_python_sandbox_time_limit() -> None:
    start = time.monotonic()
    result = run_sandboxed(
        "def reward(p, c, a):\n    while True: pass\n", "p", "c", "a", time_limit=1
    )
    assert time.monotonic() - start < 5
    assert result.value == 0.0
    assert result.reason is not None and "time" in result.reason


def test_python_sandbox_memory_limit() -> None:
    hog = "def reward(p, c, a):\n    x = bytearray(4 << 30)\n    return 1.0\n"
    result = run_sandboxed(hog, "p", "c", "a", memory=512 << 20)
    assert result.value == 0.0 and result.reason is not None and "MemoryError" in result.reason


def test_python_sandbox_has_no_network() -> None:
    source = (
        "import socket\n"
        "def reward(p, c, a):\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=2)\n"
        "    return 1.0\n"
    )
    result = run_sandboxed(source, "p", "c", "a")
    assert result.value == 0.0 and result.reason is not None
    assert "ConnectionRefusedError" in result.reason  # its own empty network namespace


def test_python_sandbox_env_is_empty() -> None:
    source = "import os\ndef reward(p, c, a):\n    return float('PATH' in os.environ)\n"
    assert run_sandboxed(source, "p", "c", "a").value == 0.0


def test_weighted_sum_and_gate() -> None:
    specs = [
        spec("math", name="answer", weight=1.0),
        spec("regex", name="format", weight=0.5, pattern=r"\\boxed", gate=True),
    ]
    both = score_one(specs, "p", "\\boxed{4}", "4")
    assert both.total == pytest.approx(1.5)
    assert both.rewards == {"answer": 1.0, "format": 1.0}
    gated = score_one(specs, "p", "4", "4")
    assert gated.total == 0.0 and gated.gated
    assert not is_correct(specs, gated)
    assert is_correct(specs, both)


def test_negative_weights_and_batch() -> None:
    specs = [
        spec("exact", name="right", weight=2.0),
        spec("regex", name="long", weight=-1.0, pattern=r".{20,}"),
    ]
    out = score_batch(specs, ["p", "p", "p"], ["ok", "ok" + "!" * 30, ""], ["ok", "ok", "ok"])
    assert [s.total for s in out] == [2.0, -1.0, 0.0]
    assert out[2].reasons["right"] == "empty completion"
