"""The process sandbox shared by `type: python` (user reward code) and `type: code`
(model-written programs run against tests).

Every run is a fresh child process that gets:
- time: a wall-clock limit (the whole process group is killed with SIGKILL) and RLIMIT_CPU;
- memory: RLIMIT_AS (address space), RLIMIT_FSIZE (no large files), no core dumps,
  RLIMIT_NPROC where the kernel enforces it (not for root);
- processes: when `unshare` permits, a new PID namespace whose init is the child, so every
  process it starts dies with it; in every case an audit hook refuses fork, exec, spawn,
  `os.system`, `subprocess`, signals to other processes and `ctypes`, and the raw
  `_posixsubprocess` / `_socket` / `_ctypes` modules cannot be imported;
- network: when `unshare` permits, a new, empty network namespace; in every case the
  `socket` module's constructors and resolvers raise and socket audit events are refused;
- filesystem: the working directory is a fresh temporary folder, removed afterwards; the
  audit hook refuses every write, create, rename, delete or permission change outside it
  (reads stay allowed);
- environment: empty (no secrets), isolated interpreter (`-I`), no bytecode writes.
This is containment for buggy or mischievous code in a pod that is itself the real
boundary; native code loaded some other way could still bypass the Python-level hook.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache

MAX_OUTPUT_BYTES = 1 << 20

GUARD = r"""
def _install_guard():
    import os, socket, sys

    def _blocked(*args, **kwargs):
        raise PermissionError("network access is disabled in the sandbox")

    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd",
                 "getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, name, _blocked)
    for name in ("_socket", "_posixsubprocess", "_ctypes", "_multiprocessing"):
        sys.modules[name] = None
    root = os.path.realpath(os.getcwd())
    allowed = (root, "/dev/null")
    realpath, fspath = os.path.realpath, os.fspath
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    denied_prefixes = ("socket.", "ctypes.", "subprocess.", "os.exec", "os.spawn",
                       "os.posix_spawn", "pty.")
    denied = {"os.fork", "os.forkpty", "os.system", "os.kill", "os.killpg", "os.startfile",
              "resource.setrlimit", "resource.prlimit", "sys.setprofile", "sys.settrace"}
    # event -> (path index, dir_fd index or None) for every path the event touches
    path_events = {"os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),),
                   "os.chmod": ((0, 2),), "os.chown": ((0, 3),), "os.utime": ((0, 3),),
                   "os.truncate": ((0, None),), "os.rename": ((0, 2), (1, 3)),
                   "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),),
                   "shutil.rmtree": ((0, 1),), "shutil.copyfile": ((1, None),),
                   "os.chroot": ((0, None),), "os.mkfifo": ((0, 2),), "os.mknod": ((0, 3),)}
    readlink, isabs, join, fsdecode = os.readlink, os.path.isabs, os.path.join, os.fsdecode

    def inside(path, dir_fd=None):
        if isinstance(path, int):
            return True  # an already open descriptor
        try:
            path = fsdecode(fspath(path))
            if isinstance(dir_fd, int) and dir_fd >= 0 and not isabs(path):
                path = join(readlink(f"/proc/self/fd/{dir_fd}"), path)
            full = realpath(path)
        except (TypeError, ValueError, OSError):
            return False
        return any(full == a or full.startswith(a + "/") for a in allowed)

    def hook(event, args):
        if event in denied or event.startswith(denied_prefixes):
            raise PermissionError(f"{event} is not allowed in the sandbox")
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(flags, int) and flags & write_flags) or (
                isinstance(mode, str) and any(c in mode for c in "wax+"))
            if writes and not inside(path):
                raise PermissionError(f"writing {path!r} outside the sandbox folder")
        elif event in path_events:
            for index, fd_index in path_events[event]:
                dir_fd = args[fd_index] if fd_index is not None and fd_index < len(args) else None
                if index < len(args) and not inside(args[index], dir_fd):
                    raise PermissionError(f"{event} outside the sandbox folder")

    real_open = os.open

    def guarded_open(path, flags, mode=0o777, *, dir_fd=None):
        # the audit event of os.open does not carry dir_fd: check it here
        if dir_fd is not None and flags & write_flags and not inside(path, dir_fd):
            raise PermissionError(f"writing {path!r} outside the sandbox folder")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    import posix

    os.open = posix.open = guarded_open

    sys.dont_write_bytecode = True
    sys.addaudithook(hook)
"""


@lru_cache(maxsize=1)
def network_isolation_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give the child an empty network namespace, if permitted."""
    return _probe((("-n",), ("-r", "-n")))


@lru_cache(maxsize=1)
def isolation_prefix() -> tuple[str, ...]:
    """New network and PID namespaces if permitted, else the network one alone, else none."""
    return _probe(
        (
            ("-n", "-p", "-f", "--kill-child"),
            ("-r", "-n", "-p", "-f", "--kill-child"),
            ("-n",),
            ("-r", "-n"),
        )
    )


def _probe(candidates: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    tool = shutil.which("unshare")
    if tool is None:
        return ()
    for flags in candidates:
        try:
            probe = subprocess.run([tool, *flags, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return (tool, *flags)
    return ()


def _limits(time_limit: float, memory: int, processes: int | None) -> None:
    """Runs in the child between fork and exec."""
    cpu = max(1, int(time_limit + 1))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


@dataclass(frozen=True)
class ChildResult:
    returncode: int | None  # None: killed at the wall-clock limit
    stdout: bytes
    stderr: bytes

    @property
    def timed_out(self) -> bool:
        return self.returncode is None or self.returncode in (-signal.SIGXCPU, -signal.SIGKILL)

    def last_error_line(self) -> str:
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return (lines[-1] if lines else "no output")[:200]


def run_child(
    program: str,
    stdin: bytes,
    *,
    time_limit: float,
    memory: int,
    prefix: tuple[str, ...] | None = None,
    extra_flags: tuple[str, ...] = (),
    processes: int | None = None,
) -> ChildResult:
    """Run `python -I <extra_flags> -c program` in a fresh temporary folder under the limits
    above; whatever happens, the process group is gone and the folder removed on return."""
    command = [
        *(network_isolation_prefix() if prefix is None else prefix),
        sys.executable,
        "-I",
        "-B",
        *extra_flags,
        "-c",
        program,
    ]
    workdir = tempfile.mkdtemp(prefix="rft-sandbox-")
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env={},
            start_new_session=True,
            preexec_fn=lambda: _limits(time_limit, memory, processes),
        )
        try:
            out, err = child.communicate(stdin, timeout=time_limit)
            code: int | None = child.returncode
        except subprocess.TimeoutExpired:
            code = None
            out, err = b"", b""
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # stragglers of a finished child too
        if code is None:
            try:  # what the child wrote before the limit
                out, err = child.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # an escaped process still holds the pipes
                for pipe in (child.stdout, child.stderr):
                    if pipe is not None:
                        pipe.close()
                child.wait()
        return ChildResult(code, out[:MAX_OUTPUT_BYTES], err[-MAX_OUTPUT_BYTES:])
    finally:
        _remove(workdir)


def _remove(path: str) -> None:
    """Delete the folder even where the child removed permissions inside it."""

    def make_writable(func: object, name: str, exc: object) -> None:
        try:
            os.chmod(os.path.dirname(name), 0o700)
            os.chmod(name, 0o700)
        except OSError:
            pass
        if os.path.isdir(name) and not os.path.islink(name):
            shutil.rmtree(name, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(name)

    shutil.rmtree(path, onerror=make_writable)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)
