"""type: code — run model-written Python against the row's tests; reward = pass fraction.

The program is the last ```python (or ```py, or plain ```) block of the completion, or the
whole completion when it has none. The tests are the reward's reference (the data's answer
column, or `answerField`, e.g. a `tests` column), one of:
- a JSON list of assert statements: `["assert add(1, 2) == 3", ...]` (statements before the
  final assert are setup);
- a JSON list of `{"input": ..., "output": ...}` pairs: the program runs once per pair with
  `input` on stdin;
- a JSON object `{"tests": [...]}` holding either list;
- plain text: each line starting with `assert` is one test (or the whole text is one test).

The grade is decided here, in the scoring process, never by the program: the sandboxed
runner (`code_child.py`, in the OS sandbox of `sandbox.py`) gets the program, the inputs and
the expressions that need the program (`asserts.py`), and sends back data — JSON values or
stdout text, one frame per test. This process decodes them (`wire.py`) and compares them
with the expected values, which never leave it. A missing, duplicated or malformed frame is
a failed case; tests not reached before the limit fail.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..config.spec import CodeSpec, RewardSpec
from .asserts import Check, compile_check
from .base import RewardResult, fraction, zero
from .sandbox import SandboxUnavailable, run_child
from .wire import BadValue, decode, parse_frame

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)

_RUNNER = (Path(__file__).parent / "code_child.py").read_text(encoding="utf-8")


def extract_code(completion: str) -> str:
    """The last python-tagged fenced block, else the last fenced block, else everything."""
    blocks = _FENCE.findall(completion)
    tagged = [body for tag, body in blocks if tag.lower() in ("python", "py", "python3")]
    if tagged:
        return str(tagged[-1])
    if blocks:
        return str(blocks[-1][1])
    return completion


def parse_tests(reference: str) -> tuple[str, list[Any]]:
    """('assert', [statement, ...]) or ('io', [{'input', 'output'}, ...]); ValueError when
    the reference holds no test."""
    try:
        data: Any = json.loads(reference)
    except ValueError:
        data = None
    if isinstance(data, dict) and "tests" in data:
        data = data["tests"]
    if isinstance(data, str):
        reference, data = data, None
    if data is None:
        lines = [line for line in reference.splitlines() if line.strip().startswith("assert")]
        tests = lines or ([reference] if reference.strip() else [])
        if not tests:
            raise ValueError("no tests in the reference answer")
        return "assert", tests
    if not isinstance(data, list) or not data:
        raise ValueError(
            "tests must be a non-empty JSON list of assert statements or {input, output} pairs"
        )
    if all(isinstance(t, str) for t in data):
        return "assert", list(data)
    if all(isinstance(t, dict) and "input" in t and "output" in t for t in data):
        return "io", [{"input": str(t["input"]), "output": str(t["output"])} for t in data]
    raise ValueError(
        "tests must be all assert strings or all {input, output} objects, not a mixture"
    )


def _verdict(kind: str, test: Any, frame: dict[str, Any] | None) -> tuple[bool, str]:
    """Pass/fail of one case, decided here from the data the runner sent."""
    if frame is None:
        return False, "no result"
    if "e" in frame:
        return False, " ".join(str(frame["e"]).split())[:200]
    try:
        if kind == "io":
            out = frame.get("out")
            if type(out) is not str:
                raise BadValue("output is not text")
            return out.strip() == test["output"].strip(), "wrong output"
        check: Check = test
        values = frame.get("v")
        if type(values) is not list:
            raise BadValue("no values")
        ok = check.verdict([decode(v) for v in values])
        return ok, "AssertionError" if not ok else ""
    except Exception as exc:  # a value that does not decode or compare fails the case
        return False, f"{type(exc).__name__}: {exc}"[:200]


def _frames(stdout: bytes, count: int) -> list[dict[str, Any] | None]:
    """The runner's frame of each case; a case with two frames has none (forged lines)."""
    seen: dict[int, dict[str, Any] | None] = {}
    for line in stdout.splitlines():
        frame = parse_frame(line)
        if frame is None or not 0 <= frame["i"] < count:
            continue
        index = frame["i"]
        seen[index] = None if index in seen else frame
    return [seen.get(i) for i in range(count)]


def run_tests(code: str, kind: str, tests: list[Any], limits: CodeSpec) -> RewardResult:
    """Run the program on every case in one sandbox; the value is the fraction that passed."""
    tests = tests[: limits.max_tests]
    try:
        compile(code, "<solution>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return zero(f"program does not compile: {exc}"[:300])
    if kind == "io":
        sent: list[Any] = [t["input"] for t in tests]
        cases: list[Any] = tests
    else:
        try:
            cases = [compile_check(t) for t in tests]
        except ValueError as exc:
            return zero(f"bad test: {exc}"[:300])
        sent = [{"setup": c.setup, "holes": list(c.holes)} for c in cases]
    payload = json.dumps({"code": code, "kind": kind, "tests": sent}).encode()
    try:
        child = run_child(
            _RUNNER,
            payload,
            time_limit=limits.timeout_seconds,
            memory=limits.memory_mb << 20,
        )
    except SandboxUnavailable as exc:
        return zero(f"SandboxUnavailable: {exc}"[:600])
    frames = _frames(child.stdout, len(cases))
    verdicts = [_verdict(kind, case, frame) for case, frame in zip(cases, frames, strict=True)]
    passed = sum(1 for ok, _ in verdicts if ok)
    value = fraction(passed, len(cases))
    failures = [why for ok, why in verdicts if not ok]
    first = f"; first failure: {failures[0]}" if failures else ""
    if child.returncode == 0 or all(f is not None for f in frames):
        if passed == len(cases):
            return RewardResult(value)
        return RewardResult(value, f"{passed}/{len(cases)} passed{first}")
    if child.timed_out:
        why = f"time limit {limits.timeout_seconds:g}s"
    elif child.output_capped:
        why = "output limit"
    else:
        why = f"exit {child.returncode}: {child.last_error_line()}"
    reached = sum(1 for f in frames if f is not None)
    return RewardResult(
        value, f"{passed}/{len(cases)} passed; stopped after {reached} ({why}){first}"
    )


def code_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    try:
        kind, tests = parse_tests(answer)
    except ValueError as exc:
        return zero(f"{exc}; put the tests in the answer column or set rewards[].answerField")
    return run_tests(extract_code(completion), kind, tests, spec.code or CodeSpec())


def code_rewards(
    spec: RewardSpec, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]
) -> list[RewardResult]:
    """Completions of a batch run in parallel sandboxes, one per CPU core."""
    workers = max(1, min(os.cpu_count() or 1, len(completions)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(
            pool.map(
                lambda item: code_reward(spec, *item),
                zip(prompts, completions, answers, strict=True),
            )
        )
