"""The containers' processes: start-time identity, stopping a whole process group,
readiness probes, following a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (tells a live process from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def stop_group(pid: int, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pid):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class Process:
    """A running container: the pod it belongs to and its process."""

    pod: str  # namespace/name
    popen: subprocess.Popen[bytes]
    log: Path
    termination: Path
    started_at: str
    probe: dict[str, Any] | None
    ip: str
    in_container: Callable[[str], str]
    ready: bool = False
    next_probe: float = 0.0
    stopping: bool = False


def probe(process: Process) -> bool:
    probe = process.probe
    if probe is None:
        return True
    get = probe.get("httpGet") or {}
    port = get.get("port")
    url = f"http://{process.ip}:{port}{get.get('path', '/')}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(200 <= response.status < 400)
    except OSError:
        return False


def follow(
    log: Path, offset: int, popen: subprocess.Popen[bytes], on_line: Callable[[str], None]
) -> None:
    """Pass each new line of the container's log to `on_line` until the process has exited."""
    with log.open("rb") as stream:
        stream.seek(offset)
        partial = b""
        while True:
            exited = popen.poll() is not None  # then all it wrote is in the file
            chunk = stream.readline()
            if not chunk:
                if exited:
                    break
                time.sleep(0.2)
                continue
            partial += chunk
            if not partial.endswith(b"\n"):
                continue
            line = partial.decode("utf-8", errors="replace").rstrip()
            partial = b""
            if line:
                on_line(line)


def log_tail(path: Path, lines: int = 80, limit: int = 2048) -> str:
    """What Kubernetes falls back to (FallbackToLogsOnError): the end of the log."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])[-limit:]
