"""The long-lived sampler's policy hand-over, both sides of it.

One sampler serves a whole run: each scoring Job names the policy it needs in the policy
file (atomic JSON on the run storage); every sampler pod watches that file, loads a new
policy's weights in place (vLLM `reload_weights` + a prefix-cache reset: no restart, no
recompilation) and records what it loaded in `loaded/<pod>.json`; the Job goes on once as
many pods as the Deployment has replicas report its policy. A sampler pod that restarts
reads the policy file first, so it never comes back serving an older policy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import atomic_write_json


def read_json(path: str | Path) -> dict[str, Any] | None:
    """A small JSON object, or None when the file is absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def requested_policy(policy_file: str | Path) -> str | None:
    """The model directory the policy file asks for (None: none asked yet)."""
    data = read_json(policy_file)
    path = data.get("path") if data else None
    return path if isinstance(path, str) and path else None


def request_policy(policy_file: str | Path, policy_path: str) -> None:
    """Ask the sampler for `policy_path` (a no-op when that is already asked)."""
    if requested_policy(policy_file) != policy_path:
        atomic_write_json(policy_file, {"path": policy_path, "requested": time.time()})


def record_loaded(loaded_dir: str | Path, pod: str, policy_path: str, seconds: float) -> None:
    """The sampler pod `pod` serves `policy_path` from now on."""
    atomic_write_json(
        Path(loaded_dir) / f"{pod}.json",
        {"pod": pod, "path": policy_path, "seconds": round(seconds, 3), "loaded": time.time()},
    )


def pods_serving(loaded_dir: str | Path, policy_path: str) -> list[str]:
    """The sampler pods that report `policy_path` loaded."""
    folder = Path(loaded_dir)
    if not folder.is_dir():
        return []
    pods = []
    for entry in sorted(folder.glob("*.json")):
        data = read_json(entry)
        if data and data.get("path") == policy_path:
            pods.append(str(data.get("pod") or entry.stem))
    return pods


class PolicyNotLoaded(RuntimeError):
    """The sampler did not load the requested policy in time."""


def wait_until_served(
    policy_file: str,
    loaded_dir: str,
    policy_path: str,
    replicas: int,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] = print,
) -> float:
    """Request `policy_path` and wait for `replicas` sampler pods to serve it; seconds waited."""
    request_policy(policy_file, policy_path)
    start = clock()
    next_note = start
    while True:
        pods = pods_serving(loaded_dir, policy_path)
        if len(pods) >= replicas:
            return clock() - start
        now = clock()
        if now - start > timeout_seconds:
            raise PolicyNotLoaded(
                f"the sampler did not load {policy_path} within {timeout_seconds:.0f} s "
                f"({len(pods)}/{replicas} pods report it); check the sampler pods' logs"
            )
        if now >= next_note:
            say(f"[policy] waiting for {replicas - len(pods)} sampler pod(s) to load {policy_path}")
            next_note = now + 30
        sleep(0.5)
