"""type: python — a user's `reward(prompt, completion, answer) -> float`, run in a sandbox.

What the sandbox guarantees (each call is a fresh child process):
- time: a wall-clock limit (the child's process group is killed) and RLIMIT_CPU;
- memory: RLIMIT_AS (address space) and RLIMIT_FSIZE (no large files);
- network: when `unshare -n` works (root or user namespaces) the child runs in a new,
  empty network namespace (no interfaces but a downed loopback); in every case the
  `socket` module is replaced before user code runs, so creating a socket raises;
- environment: empty (no secrets leak through env vars), isolated interpreter (`-I`: no
  PYTHON* variables, no user site; the runtime's installed packages stay importable),
  working directory a fresh temporary folder that is removed afterwards.
It is NOT a security boundary against hostile code (the filesystem stays readable, and
code can reach C-level sockets through ctypes when unshare is unavailable); it keeps
honest-but-buggy reward code from hanging, exhausting memory or calling out.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import lru_cache

from ..config.spec import RewardSpec
from .base import RewardResult, zero

TIME_LIMIT_SECONDS = 5.0
MEMORY_LIMIT_BYTES = 1 << 30
MAX_OUTPUT_BYTES = 1 << 20

_CHILD = r"""
import json, os, socket, sys

def _blocked(*args, **kwargs):
    raise PermissionError("network access is disabled in the reward sandbox")

for _name in ("socket", "create_connection", "create_server", "socketpair", "fromfd",
              "getaddrinfo", "gethostbyname", "gethostbyname_ex"):
    setattr(socket, _name, _blocked)
sys.modules["_socket"] = None  # no bypass through the C module either

_out = os.fdopen(os.dup(1), "w")
sys.stdout = sys.stderr  # the user's prints must not corrupt the result line
job = json.loads(sys.stdin.read())
scope = {"__name__": "reward_sandbox"}
exec(compile(job["source"], "<reward source>", "exec"), scope)
value = float(scope["reward"](job["prompt"], job["completion"], job["answer"]))
_out.write(json.dumps({"value": value}))
_out.flush()
"""


@lru_cache(maxsize=1)
def network_isolation_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give the child an empty network namespace, if permitted."""
    tool = shutil.which("unshare")
    if tool is None:
        return ()
    for flags in (("-n",), ("-r", "-n")):
        try:
            probe = subprocess.run([tool, *flags, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return (tool, *flags)
    return ()


def _limits(time_limit: float, memory: int) -> None:
    """Runs in the child between fork and exec."""
    cpu = max(1, int(time_limit + 1))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


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
    command = [*network_isolation_prefix(), sys.executable, "-I", "-c", _CHILD]
    with tempfile.TemporaryDirectory(prefix="rft-reward-") as workdir:
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env={},
            start_new_session=True,
            preexec_fn=lambda: _limits(time_limit, memory),
        )
        try:
            out, err = child.communicate(payload.encode(), timeout=time_limit)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return zero(f"python reward timed out after {time_limit:g}s")
    if child.returncode != 0:
        if child.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return zero("python reward exceeded its time limit")
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return zero(f"python reward failed: {last[0][:200]}")
    try:
        return RewardResult(float(json.loads(out[:MAX_OUTPUT_BYTES])["value"]))
    except (ValueError, KeyError, TypeError):
        return zero("python reward returned no number")


def python_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    if not spec.source:
        return zero("no source configured")
    return run_sandboxed(spec.source, prompt, completion, answer)
