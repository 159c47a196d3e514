"""The operating-system sandbox shared by `type: code` (model-written programs) and
`type: python` (user reward code): bubblewrap (`bwrap`, Debian package `bubblewrap`) runs
the interpreter in fresh Linux namespaces, so what holds does not depend on Python.

Each run gets:
- user namespace (no capabilities, no further namespaces: `--disable-userns`), PID namespace
  (it sees and can signal or ptrace only its own processes; all of them die with it), empty
  network namespace, IPC and UTS namespaces, a new session (no terminal injection);
- a mount namespace whose root is an empty read-only tmpfs holding only read-only binds of
  /usr (and the /lib, /bin symlinks), the interpreter's prefix and, for `python` rewards,
  the installed packages; a minimal read-only /dev; no /proc, /sys, /etc, /home, /root,
  /var, no storage volume, no service-account token; the only writable place is /tmp, a
  fresh host folder removed afterwards;
- an empty environment and only descriptors 0, 1 and 2 (stdin: the job, stdout: the data
  that comes back, stderr: diagnostics);
- a seccomp filter (`seccomp.py`): no new processes (threads stay allowed);
- rlimits: address space, CPU seconds, 1 MiB per file, no core dumps;
- a wall-clock limit after which the sandbox's PID namespace is killed (SIGKILL to its init
  and to the bwrap process group), and output capped while it streams.
When bwrap cannot create the namespaces (not installed, or a pod whose seccomp/AppArmor
profile forbids them), `SandboxUnavailable` says so and which setting to change: the
rewards refuse to run unconfined.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..config.spec import SANDBOXED_TYPES
from . import seccomp

MAX_OUTPUT_BYTES = 1 << 20
MAX_STDERR_BYTES = 64 << 10
GRACE_SECONDS = 2.0
SANDBOX_TMP = "/tmp"

SETTING_HINT = (
    "the scoring pod needs user, mount and PID namespaces for bubblewrap: keep "
    "spec.runtime.sandbox.seccompProfile at Unconfined (or a Localhost profile that allows "
    "clone/unshare with namespace flags, mount, pivot_root and umount2), "
    "spec.runtime.sandbox.appArmorProfile at Unconfined, and a node whose kernel allows "
    "unprivileged user namespaces (or set spec.runtime.runtimeClassName to a sandboxed "
    "runtime that provides them); locally, install bubblewrap (apt-get install bubblewrap)"
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot build the sandbox here; the message names what to change."""


@dataclass(frozen=True)
class ChildResult:
    returncode: int | None  # None: killed at the wall-clock limit or at the output cap
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    output_capped: bool = False

    def last_error_line(self) -> str:
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return (lines[-1] if lines else "no output")[:200]


def _bind_args(paths: Sequence[str]) -> list[str]:
    """Read-only binds of `paths` plus /usr and the merged-/usr symlinks (or binds)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    seen = {"/usr"}
    for path in sorted({os.path.realpath(p) for p in paths}):
        if not os.path.isdir(path) or any(path == s or path.startswith(s + "/") for s in seen):
            continue
        seen.add(path)
        args += ["--ro-bind", path, path]
    return args


def interpreter() -> str:
    """The real base interpreter (not a venv's symlink)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def package_dirs() -> list[str]:
    """The installed-package folders of this interpreter (for `python` rewards)."""
    found = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    return list(dict.fromkeys(os.path.realpath(p) for p in found))


def bwrap_command(workdir: str, packages: bool, info_fd: int, seccomp_fd: int) -> list[str]:
    tool = shutil.which("bwrap")
    if tool is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed; " + SETTING_HINT)
    if not seccomp.supported():
        raise SandboxUnavailable(f"no seccomp filter for this machine ({platform.machine()})")
    binds = [sys.base_prefix, os.path.dirname(interpreter())]
    if packages:
        binds += package_dirs()
    return [
        tool,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        *_bind_args(binds),
        "--dev",
        "/dev",
        "--bind",
        workdir,
        SANDBOX_TMP,
        "--remount-ro",
        "/",
        "--remount-ro",
        "/dev",
        "--chdir",
        SANDBOX_TMP,
        "--setenv",
        "TMPDIR",
        SANDBOX_TMP,
        "--info-fd",
        str(info_fd),
        "--seccomp",
        str(seccomp_fd),
        "--",
    ]


def _limits(time_limit: float, memory: int) -> None:
    """Runs in the child between fork and exec; bwrap and the sandbox inherit them."""
    cpu = max(1, int(time_limit + 1))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_child(
    program: str,
    stdin: bytes,
    *,
    time_limit: float,
    memory: int,
    packages: bool = False,
    flags: Sequence[str] = ("-S",),
) -> ChildResult:
    """Run `python -I -B <flags> -c program` in the sandbox; whatever happens, every process
    of the sandbox is gone and its folder removed on return, within the limit + ~2 s.
    Raises `SandboxUnavailable` (checked once per process) instead of running unconfined."""
    require()
    return _run(program, stdin, time_limit, memory, packages, flags)


def _run(
    program: str,
    stdin: bytes,
    time_limit: float,
    memory: int,
    packages: bool,
    flags: Sequence[str],
) -> ChildResult:
    workdir = tempfile.mkdtemp(prefix="rft-sandbox-")
    info_read, info_write = os.pipe()
    filter_fd = os.memfd_create("rft-seccomp", 0)
    try:
        os.write(filter_fd, seccomp.no_new_processes())
        os.lseek(filter_fd, 0, os.SEEK_SET)
        command = [
            *bwrap_command(workdir, packages, info_write, filter_fd),
            interpreter(),
            "-I",
            "-B",
            *flags,
            "-c",
            program,
        ]
        deadline = time.monotonic() + time_limit
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(info_write, filter_fd),
            env={},
            cwd=workdir,
            start_new_session=True,
            preexec_fn=lambda: _limits(time_limit, memory),
        )
        os.close(info_write)
        info_write = -1
        os.close(filter_fd)
        filter_fd = -1
        streams = _Streams(child, stdin, info_read)
        try:
            streams.pump(deadline)
        finally:
            _kill(child, streams.sandbox_pid)
        stopped = streams.deadline_hit or streams.capped
        return ChildResult(
            None if stopped else child.returncode,
            bytes(streams.out),
            bytes(streams.err),
            streams.deadline_hit,
            streams.capped,
        )
    finally:
        for fd in (info_read, info_write, filter_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        remove_tree(workdir)


class _Streams:
    """Feed stdin and read stdout/stderr/info without blocking, with caps, until the child
    exits or the deadline passes."""

    def __init__(self, child: subprocess.Popen[bytes], stdin: bytes, info_fd: int) -> None:
        self.child = child
        self.pending = memoryview(stdin)
        self.out = bytearray()
        self.err = bytearray()
        self.info = bytearray()
        self.capped = False
        self.deadline_hit = False
        self.sandbox_pid: int | None = None
        self.selector = selectors.DefaultSelector()
        assert child.stdin and child.stdout and child.stderr
        for pipe in (child.stdin, child.stdout, child.stderr):
            os.set_blocking(pipe.fileno(), False)
        os.set_blocking(info_fd, False)
        if self.pending:
            self.selector.register(child.stdin, selectors.EVENT_WRITE, "in")
        else:
            child.stdin.close()
        self.selector.register(child.stdout, selectors.EVENT_READ, "out")
        self.selector.register(child.stderr, selectors.EVENT_READ, "err")
        self.selector.register(info_fd, selectors.EVENT_READ, "info")

    def pump(self, deadline: float) -> None:
        try:
            while self.selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    self.deadline_hit = True
                    return
                for key, _ in self.selector.select(timeout=min(left, 0.5)):
                    self._ready(key)
                    if self.capped:
                        return
            self.child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.deadline_hit = True
        finally:
            self.selector.close()

    def _ready(self, key: selectors.SelectorKey) -> None:
        if key.data == "in":
            assert self.child.stdin is not None
            try:
                sent = os.write(self.child.stdin.fileno(), self.pending[:65536])
            except (BrokenPipeError, BlockingIOError):
                sent = len(self.pending)
            self.pending = self.pending[sent:]
            if not self.pending:
                self.selector.unregister(self.child.stdin)
                self.child.stdin.close()
            return
        fd = key.fd
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.selector.unregister(key.fileobj)
            return
        if key.data == "out":
            room = MAX_OUTPUT_BYTES - len(self.out)
            self.out += chunk[:room]
            self.capped = len(chunk) > room
        elif key.data == "err":
            self.err += chunk
            del self.err[:-MAX_STDERR_BYTES]
        else:
            self.info += chunk[:4096]
            self._parse_info()

    def _parse_info(self) -> None:
        if self.sandbox_pid is None:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                self.sandbox_pid = int(json.loads(self.info.decode())["child-pid"])


def _kill(child: subprocess.Popen[bytes], sandbox_pid: int | None) -> None:
    """SIGKILL the sandbox's PID-namespace init (the kernel then kills every process of the
    namespace, `setsid` or not) and bwrap's process group; wait for both."""
    pidfd = None
    if sandbox_pid is not None:
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(sandbox_pid)
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILLed: only a stuck kernel
        child.wait(timeout=GRACE_SECONDS)
    if pidfd is not None:
        with contextlib.suppress(OSError):
            sel = selectors.DefaultSelector()
            sel.register(pidfd, selectors.EVENT_READ)
            sel.select(timeout=GRACE_SECONDS)  # readable once the namespace's init has exited
            sel.close()
        os.close(pidfd)
    for pipe in (child.stdin, child.stdout, child.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


@lru_cache(maxsize=1)
def availability() -> str | None:
    """None when the sandbox works here, else why not (cached: the answer does not change
    within one process)."""
    try:
        result = _run("print(6 * 7)", b"", 20.0, 1 << 30, False, ("-S",))
    except SandboxUnavailable as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot start bubblewrap: {exc}; {SETTING_HINT}"
    if result.returncode == 0 and result.stdout.strip() == b"42":
        return None
    detail = result.stderr.decode("utf-8", "replace").strip()[-300:] or "no output"
    return f"bubblewrap cannot create the sandbox ({detail}); {SETTING_HINT}"


def require() -> None:
    """Raise `SandboxUnavailable` unless the sandbox works here."""
    why = availability()
    if why is not None:
        raise SandboxUnavailable(why)


def require_for(reward_types: Iterable[str]) -> None:
    """Refuse up front (before any sampling is paid for) when a reward needs the sandbox."""
    if SANDBOXED_TYPES.intersection(reward_types):
        require()


def remove_tree(path: str) -> None:
    """Delete the folder even where the child removed permissions inside it."""

    def make_writable(func: object, name: str, exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
        with contextlib.suppress(OSError):
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
                shutil.rmtree(name, ignore_errors=True)
            else:
                os.unlink(name)

    shutil.rmtree(path, onerror=make_writable)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)
