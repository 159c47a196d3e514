"""type: python — a user's `reward(prompt, completion, answer) -> float`, run in the OS
sandbox of `sandbox.py`.

User reward code is trusted less than the operator and more than the policy: it is the
grader, so its return value is the verdict (clamped to the type's range by the caller),
but it runs with the same isolation as `type: code` programs — no network, no writes
outside its temporary folder, no view of the scoring process, its environment, secrets or
service-account token, no processes left behind, time and memory limits — plus read-only
access to the runtime's installed packages. The completion reaches it as data only.
"""

from __future__ import annotations

import json

from ..config.spec import RewardSpec
from .base import RewardResult, zero
from .sandbox import MAX_OUTPUT_BYTES, SandboxUnavailable, package_dirs, run_child

TIME_LIMIT_SECONDS = 5.0
MEMORY_LIMIT_BYTES = 1 << 30

_RUNNER = r"""
import json, site, sys

job = json.loads(sys.stdin.read())
for folder in job["packages"]:
    site.addsitedir(folder)
out = sys.stdout
sys.stdout = sys.stderr  # the user's prints must not mix with the value
scope = {"__name__": "reward_sandbox"}
exec(compile(job["source"], "<reward source>", "exec"), scope)
value = float(scope["reward"](job["prompt"], job["completion"], job["answer"]))
out.write(json.dumps({"value": value}))
out.flush()
"""


def run_sandboxed(
    source: str,
    prompt: str,
    completion: str,
    answer: str,
    *,
    time_limit: float = TIME_LIMIT_SECONDS,
    memory: int = MEMORY_LIMIT_BYTES,
) -> RewardResult:
    """Run `reward(...)` from `source` in a fresh sandbox; never raises."""
    payload = json.dumps(
        {
            "source": source,
            "prompt": prompt,
            "completion": completion,
            "answer": answer,
            "packages": package_dirs(),
        }
    )
    try:
        child = run_child(
            _RUNNER, payload.encode(), time_limit=time_limit, memory=memory, packages=True
        )
    except SandboxUnavailable as exc:
        return zero(f"SandboxUnavailable: {exc}"[:600])
    if child.timed_out:
        return zero(f"python reward timed out after {time_limit:g}s")
    if child.returncode != 0:
        return zero(f"python reward failed: {child.last_error_line()}")
    try:
        value = json.loads(child.stdout[:MAX_OUTPUT_BYTES])["value"]
    except (ValueError, KeyError, TypeError):
        return zero("python reward returned no number")
    if type(value) not in (int, float):
        return zero("python reward returned no number")
    return RewardResult(float(value))


def python_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    if not spec.source:
        return zero("no source configured")
    return run_sandboxed(spec.source, prompt, completion, answer)


__all__ = ["python_reward", "run_sandboxed"]
