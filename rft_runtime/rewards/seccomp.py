"""The one seccomp filter the sandbox adds on top of its namespaces: no new processes.

bubblewrap loads it (`--seccomp FD`) just before it executes the sandboxed interpreter.
Threads stay allowed (clone with CLONE_THREAD); fork, vfork and clone without CLONE_THREAD
fail with EPERM; clone3 fails with ENOSYS so the C library falls back to clone. Without
it, a fork bomb run by root (whose RLIMIT_NPROC the kernel does not enforce) could fill the
machine before the time limit. A foreign architecture is killed outright.
"""

from __future__ import annotations

import errno
import platform
import struct

# classic BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_JGE_K = 0x35
_RET_K = 0x06

_ALLOW = 0x7FFF0000
_KILL = 0x80000000
_ERRNO = 0x00050000
_CLONE_THREAD = 0x00010000

# machine -> (AUDIT_ARCH, clone, clone3, [other process-creating syscalls], x32 bit)
_ARCHES = {
    "x86_64": (0xC000003E, 56, 435, [57, 58], 0x40000000),  # fork, vfork
    "aarch64": (0xC00000B7, 220, 435, [], 0),
}


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported() -> bool:
    return platform.machine() in _ARCHES


def no_new_processes() -> bytes:
    """The filter as bwrap reads it: an array of `struct sock_filter`."""
    arch, clone, clone3, spawners, x32 = _ARCHES[platform.machine()]
    eperm, enosys = _ERRNO | errno.EPERM, _ERRNO | errno.ENOSYS
    program = [
        _op(_LD_W_ABS, 4),  # seccomp_data.arch
        _op(_JEQ_K, arch, 1, 0),
        _op(_RET_K, _KILL),
        _op(_LD_W_ABS, 0),  # seccomp_data.nr
    ]
    if x32:
        program += [_op(_JGE_K, x32, 0, 1), _op(_RET_K, eperm)]
    for number in spawners:
        program += [_op(_JEQ_K, number, 0, 1), _op(_RET_K, eperm)]
    program += [
        _op(_JEQ_K, clone3, 0, 1),
        _op(_RET_K, enosys),
        _op(_JEQ_K, clone, 0, 4),
        _op(_LD_W_ABS, 16),  # low word of args[0]: the clone flags
        _op(_JSET_K, _CLONE_THREAD, 0, 1),
        _op(_RET_K, _ALLOW),
        _op(_RET_K, eperm),
        _op(_RET_K, _ALLOW),
    ]
    return b"".join(program)
