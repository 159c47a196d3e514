"""type: python — a user's `reward(prompt, completion, answer) -> float`, run in a sandbox.

Each call is a fresh child process with the guarantees listed in `sandbox.py` (time and
memory limits, no network, no child processes, no writes outside a temporary folder that
is removed afterwards, empty environment). The runtime's installed packages stay
importable. It is NOT a security boundary against hostile code; it keeps honest-but-buggy
reward code from hanging, exhausting memory or calling out.
"""

from __future__ import annotations

import json

from ..config.spec import RewardSpec
from .base import RewardResult, zero
from .sandbox import GUARD, MAX_OUTPUT_BYTES, network_isolation_prefix, run_child

TIME_LIMIT_SECONDS = 5.0
MEMORY_LIMIT_BYTES = 1 << 30

_CHILD = (
    GUARD
    + r"""
import json, os, sys

_out = os.fdopen(os.dup(1), "w")
sys.stdout = sys.stderr  # the user's prints must not corrupt the result line
job = json.loads(sys.stdin.read())
_install_guard()
scope = {"__name__": "reward_sandbox"}
exec(compile(job["source"], "<reward source>", "exec"), scope)
value = float(scope["reward"](job["prompt"], job["completion"], job["answer"]))
_out.write(json.dumps({"value": value}))
_out.flush()
"""
)


def run_sandboxed(
    source: str,
    prompt: str,
    completion: str,
    answer: str,
    *,
    time_limit: float = TIME_LIMIT_SECONDS,
    memory: int = MEMORY_LIMIT_BYTES,
) -> RewardResult:
    """Run `reward(...)` from `source` in a fresh limited child; never raises."""
    payload = json.dumps(
        {"source": source, "prompt": prompt, "completion": completion, "answer": answer}
    )
    child = run_child(
        _CHILD,
        payload.encode(),
        time_limit=time_limit,
        memory=memory,
        prefix=network_isolation_prefix(),
    )
    if child.returncode is None:
        return zero(f"python reward timed out after {time_limit:g}s")
    if child.returncode != 0:
        if child.timed_out:
            return zero("python reward exceeded its time limit")
        return zero(f"python reward failed: {child.last_error_line()}")
    try:
        return RewardResult(float(json.loads(child.stdout[:MAX_OUTPUT_BYTES])["value"]))
    except (ValueError, KeyError, TypeError):
        return zero("python reward returned no number")


def python_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    if not spec.source:
        return zero("no source configured")
    return run_sandboxed(spec.source, prompt, completion, answer)


__all__ = ["network_isolation_prefix", "python_reward", "run_sandboxed"]
