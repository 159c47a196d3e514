"""Hostile completions against `type: code` (and hostile `type: python` reward code).

Every case asserts grade integrity (the reward equals what an honest grader gives: 0, as no
program here solves its task) and containment (nothing written, read, connected, signalled
or left running outside the sandbox). The scoring process's surroundings are simulated by
`Surroundings`: a folder with a secret file standing in for the service-account token and a
host file, a TCP and an abstract-unix listener on the host, a SIGUSR1 handler, and this
process's own environment holding a secret. Runs as root and, via test_code_sandbox_nonroot,
as an unprivileged user with no_new_privs and no capabilities (the pod's settings).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rft_runtime.config.spec import RewardSpec
from rft_runtime.rewards import REGISTRY, score_one
from rft_runtime.rewards.sandbox import availability, run_child

SECRET = "s3cr3t-" + uuid.uuid4().hex

pytestmark = pytest.mark.skipif(availability() is not None, reason=str(availability()))


@dataclass
class Surroundings:
    folder: Path
    token: Path
    host_file: Path
    marker: str
    port: int
    abstract: str
    pid: int = field(default_factory=os.getpid)
    connections: list[str] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)

    def fill(self, template: str) -> str:
        return template.format(s=self)

    def snapshot(self) -> dict[str, tuple[int, bytes]]:
        return {p.name: (p.stat().st_mode, p.read_bytes()) for p in sorted(self.folder.iterdir())}

    def survivors(self) -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if self.marker.encode() in (entry / "cmdline").read_bytes():
                        found.append(entry.name)
        return found


def _listen(sock: socket.socket, seen: list[str], label: str) -> None:
    with contextlib.suppress(OSError):
        while True:
            conn, _ = sock.accept()
            seen.append(label)
            conn.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Surroundings]:
    tmp_path.chmod(0o755)
    token = tmp_path / "token"
    token.write_text(SECRET)
    token.chmod(0o644)
    host_file = tmp_path / "host.conf"
    host_file.write_text("host " + SECRET)
    host_file.chmod(0o644)
    monkeypatch.setenv("RFT_JUDGE_API_KEY_SECRET", SECRET)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    unix = socket.socket(socket.AF_UNIX)
    abstract = "rft-test-" + uuid.uuid4().hex
    unix.bind("\0" + abstract)
    unix.listen()
    here = Surroundings(
        tmp_path, token, host_file, "rftmark" + uuid.uuid4().hex, tcp.getsockname()[1], abstract
    )
    for sock, label in ((tcp, "tcp"), (unix, "unix")):
        threading.Thread(target=_listen, args=(sock, here.connections, label), daemon=True).start()
    previous = signal.signal(signal.SIGUSR1, lambda n, f: here.signals.append(n))
    try:
        yield here
    finally:
        signal.signal(signal.SIGUSR1, previous)
        tcp.close()
        unix.close()


def contained(world: Surroundings, before: dict[str, tuple[int, bytes]]) -> None:
    assert world.snapshot() == before, "the host folder changed"
    assert not Path(f"/tmp/{world.marker}").exists(), "wrote to the host's /tmp"
    assert not Path(f"/work/{world.marker}").exists()
    assert world.survivors() == [], "a process outlived the call"
    assert world.connections == [], "connected out of the sandbox"
    assert world.signals == [], "signalled the scoring process"


READ_SECRET = "def solve(x):\n    return open({s.token!r}).read()\n"
LEAK_TESTS = [f"assert solve(1) == {SECRET!r}"]
SOLVE_TESTS = ["assert solve(2) == 5", "assert solve(3) == 10", "assert solve(10) == 101"]
STUB = "\ndef solve(x):\n    return 0\n"

# (id, program template, tests) — `{s.…}` fields come from Surroundings; every program
# carries the marker (in a comment) so a surviving process is found by its command line.
CASES: list[tuple[str, str, list[str]]] = [
    # --- forging the grade --------------------------------------------------------------
    (
        "inherited-descriptors",
        "import os\nfor fd in range(256):\n    try:\n"
        '        os.write(fd, b\'1\\n1\\n{{"i": 0, "v": [true]}}\\n\')\n'
        "    except OSError:\n        pass\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "forged-frames-then-exit",
        "import os\nfor i in range(3):\n"
        '    os.write(1, (\'{{"i": %d, "v": [5]}}\\n\' % i).encode())\n'
        '    os.write(1, (\'{{"i": %d, "v": []}}\\n\' % i).encode())\n'
        "os._exit(0)\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "always-equal-object",
        "class Any:\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = object.__hash__\n"
        "def solve(x):\n    return Any()\n",
        SOLVE_TESTS,
    ),
    (
        "always-equal-int-subclass",
        "class E(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n"
        "def solve(x):\n    return E(0)\n",
        SOLVE_TESTS,
    ),
    (
        "rebind-harness-variables",
        "import sys\nrunner = sys.modules['__main__']\n"
        "runner.encode = lambda value, depth=0: True\n"
        "runner.run_one = lambda code, kind, test: {{'v': [True] * 9}}\n"
        "runner.MAX_DEPTH = -1\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "replace-builtins-exec-eval",
        "import builtins\nbuiltins.exec = lambda *a, **k: None\n"
        "builtins.eval = lambda *a, **k: True\nbuiltins.compile = lambda *a, **k: None\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "atexit-appends-passes",
        "import atexit, os\n"
        'atexit.register(lambda: os.write(1, b\'1\\n{{"i": 0, "v": [5]}}\\n\' * 50))\n' + STUB,
        SOLVE_TESTS,
    ),
    (
        "json-encoder-patched",
        "import json\njson.dumps = lambda obj, *a, **k: '{{\"i\": %d, \"v\": [true]}}' % obj['i']\n"
        + STUB,
        SOLVE_TESTS,
    ),
    (
        "search-memory-for-expected",
        "import gc, sys\n"
        "found = [o for o in gc.get_objects() if isinstance(o, str) and '5' == o]\n"
        "def solve(x):\n    return found[0] if found else None\n",
        SOLVE_TESTS,
    ),
    (
        "gc-and-sys-modules-tampering",
        "import gc, sys\n"
        "for o in gc.get_objects():\n"
        "    if callable(o) and getattr(o, '__closure__', None):\n"
        "        try:\n            o.__closure__[0].cell_contents = None\n"
        "        except Exception:\n            pass\n"
        "sys.modules['json'] = None\nsys.modules['io'] = None\n"
        "open('/tmp/../work/{s.marker}', 'w')\n" + STUB,
        SOLVE_TESTS,
    ),
    # --- reading what the scoring process can read ----------------------------------
    ("service-account-token", READ_SECRET, LEAK_TESTS),
    (
        "kubernetes-token-path",
        "def solve(x):\n"
        "    return open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()\n",
        LEAK_TESTS,
    ),
    (
        "host-file",
        "def solve(x):\n    return open({s.host_file!r}).read().split()[1]\n",
        LEAK_TESTS,
    ),
    (
        "proc-environ-of-every-process",
        "import glob\ndef solve(x):\n    for p in glob.glob('/proc/*/environ'):\n"
        "        data = open(p, 'rb').read()\n"
        f"        if b'{SECRET}' in data:\n            return '{SECRET}'\n"
        "    return open('/proc/{s.pid}/environ').read()\n",
        LEAK_TESTS,
    ),
    (
        "environment-variables",
        "import os\ndef solve(x):\n    return os.environ['RFT_JUDGE_API_KEY_SECRET']\n",
        LEAK_TESTS,
    ),
    (
        "mount-proc-with-ctypes",
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nos.mkdir('p')\n"
        "libc.mount(b'proc', b'p', b'proc', 0, None)\n"
        "def solve(x):\n    return open('p/{s.pid}/environ').read()\n",
        LEAK_TESTS,
    ),
    # --- writing outside ------------------------------------------------------------
    (
        "write-host-paths",
        "for path in [{s.folder!r} + '/new', '/tmp/{s.marker}', '/work/{s.marker}',\n"
        "             {s.token!r}]:\n"
        "    try:\n        open(path, 'w').write('x')\n    except OSError:\n        pass\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "sqlite3-database",
        "import sqlite3\nfor path in [{s.folder!r} + '/db.sqlite', '/tmp/{s.marker}']:\n"
        "    try:\n        sqlite3.connect(path).execute('create table t (x)')\n"
        "    except Exception:\n        pass\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "chmod-fchmod",
        "import os\nfor f in [lambda: os.chmod({s.token!r}, 0o777),\n"
        "          lambda: os.fchmod(os.open({s.token!r}, os.O_RDONLY), 0o777),\n"
        "          lambda: os.fchmod(os.open('/usr', os.O_RDONLY), 0o777)]:\n"
        "    try:\n        f()\n    except OSError:\n        pass\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "symlink-in-own-folder",
        "import os\nos.symlink({s.folder!r}, 'up')\nos.symlink({s.token!r}, 'tok')\n"
        "os.chmod('.', 0o000)\n" + STUB,
        SOLVE_TESTS,
    ),
    # --- processes, signals, native code ---------------------------------------------
    (
        "setsid-survivor",
        "import os, sys\nif os.fork() == 0:\n    os.setsid()\n"
        "    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)',"
        " '{s.marker}'])\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "posixsubprocess-native-spawn",
        "import subprocess\nsubprocess.Popen(['sleep', '60', '{s.marker}'],"
        " start_new_session=True)\n"
        "import _posixsubprocess\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "ctypes-fork-daemon",
        "import ctypes, os, time\nlibc = ctypes.CDLL(None)\n"
        "if libc.fork() == 0:\n    libc.setsid()\n"
        "    os.execv('/usr/bin/sleep', ['sleep', '60', '{s.marker}'])\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "signals-to-the-scoring-process",
        "import os, signal\n"
        "for action in [lambda: os.kill({s.pid}, signal.SIGUSR1),\n"
        "               lambda: os.killpg(os.getpgid({s.pid}), signal.SIGUSR1),\n"
        "               lambda: os.kill(os.getppid(), signal.SIGUSR1),\n"
        "               lambda: signal.pidfd_send_signal(os.pidfd_open({s.pid}),"
        " signal.SIGUSR1),\n"
        "               lambda: os.kill(-1, signal.SIGUSR1)]:\n"
        "    try:\n        action()\n    except Exception:\n        pass\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "ptrace-the-scoring-process",
        "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.ptrace(16, {s.pid}, 0, 0)\n"
        "libc.ptrace(16, 1, 0, 0)\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "fork-bomb",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
        "        pass\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "new-namespaces",
        "import os\nfor flags in (os.CLONE_NEWUSER, os.CLONE_NEWNS, os.CLONE_NEWNET):\n"
        "    try:\n        os.unshare(flags)\n"
        "        open('/tmp/../work/{s.marker}', 'w')\n    except OSError:\n        pass\n" + STUB,
        SOLVE_TESTS,
    ),
    # --- network ----------------------------------------------------------------------
    (
        "network",
        "import socket\nfor make in [\n"
        "    lambda: socket.create_connection(('127.0.0.1', {s.port}), timeout=1),\n"
        "    lambda: socket.socket(socket.AF_UNIX).connect('\\0{s.abstract}'),\n"
        "    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x',"
        " ('10.0.0.1', 53)),\n"
        "    lambda: socket.create_connection(('1.1.1.1', 443), timeout=1)]:\n"
        "    try:\n        make()\n    except OSError:\n        pass\n" + STUB,
        SOLVE_TESTS,
    ),
    # --- floods and loops ---------------------------------------------------------------
    (
        "memory-flood",
        "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 26))\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "output-flood",
        "import os, sys\nwhile True:\n    os.write(1, b'1\\n' * 65536)\n"
        "    sys.stderr.write('e' * 65536)\n" + STUB,
        SOLVE_TESTS,
    ),
    (
        "loop-ignoring-sigxcpu",
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n" + STUB,
        SOLVE_TESTS,
    ),
]


@pytest.mark.parametrize(("name", "template", "tests"), CASES, ids=[c[0] for c in CASES])
def test_hostile_completion(
    name: str, template: str, tests: list[str], world: Surroundings
) -> None:
    program = f"# {world.marker}\n" + world.fill(template)
    before = world.snapshot()
    spec = RewardSpec(name="tests", type="code", code={"timeoutSeconds": 2, "memoryMb": 512})
    result = REGISTRY["code"](spec, "p", f"```python\n{program}```", json.dumps(tests))
    assert result.value == 0.0, result.reason
    contained(world, before)


def test_io_mode_cannot_print_the_expected_output(world: Surroundings) -> None:
    """The expected outputs stay in the grading process: nothing in the sandbox holds them."""
    program = world.fill(
        f"# {world.marker}\nimport gc, sys\n"
        "texts = [o for o in gc.get_objects() if isinstance(o, dict) and 'output' in o]\n"
        "runner = sys.modules['__main__']\n"
        "job = getattr(runner, 'job', None)\n"
        "print(texts[0]['output'] if texts else (job or {{}}).get('tests', [''])[0])\n"
    )
    pairs = [{"input": "2", "output": "1597"}, {"input": "3", "output": "28657"}]
    before = world.snapshot()
    result = REGISTRY["code"](RewardSpec(name="io", type="code"), "p", program, json.dumps(pairs))
    assert result.value == 0.0, result.reason
    contained(world, before)


def test_pass_counts_and_totals_are_bounded(world: Surroundings) -> None:
    """Thousands of forged lines cannot push the fraction past what was solved, and a total
    is never above the sum of the weights."""
    program = (
        f'# {world.marker}\nimport os\nos.write(1, b\'1\\n{{"i": 0, "v": [5]}}\\n\' * 5000)\n'
        "def solve(x):\n    return x * x + 1\n"
    )
    tests = json.dumps(["assert solve(2) == 5", "assert solve(3) == 0"])
    spec = RewardSpec(name="tests", type="code", weight=2.0)
    scored = score_one([spec], "p", program, tests)
    assert scored.rewards["tests"] == 0.0  # case 0 has two frames: forged, so failed
    honest = "def solve(x):\n    return x * x + 1\n"
    assert score_one([spec], "p", honest, tests).total == pytest.approx(1.0)  # 2 * 1/2


@pytest.mark.parametrize("value", ["1e9", "float('inf')", "float('nan')", "-5", "True"])
def test_python_reward_values_are_clamped(value: str) -> None:
    source = f"def reward(p, c, a):\n    return {value}\n"
    result = REGISTRY["python"](RewardSpec(name="r", type="python", source=source), "p", "c", "a")
    assert 0.0 <= result.value <= 1.0


PYTHON_HOSTILE = [
    ("token", "return float(open({s.token!r}).read() == '" + SECRET + "')"),
    ("host-write", "open({s.folder!r} + '/w', 'w').write('x')\n    return 1.0"),
    (
        "connect",
        "import socket\n    socket.create_connection(('127.0.0.1', {s.port}))\n    return 1.0",
    ),
    ("environ", "import os\n    return float('RFT_JUDGE_API_KEY_SECRET' in os.environ)"),
    (
        "survivor",
        "import os, subprocess\n    subprocess.Popen(['sleep', '60', '{s.marker}'],"
        " start_new_session=True)\n    return 0.0",
    ),
]


@pytest.mark.parametrize(("name", "body"), PYTHON_HOSTILE, ids=[c[0] for c in PYTHON_HOSTILE])
def test_python_reward_code_is_contained(name: str, body: str, world: Surroundings) -> None:
    source = world.fill("def reward(p, c, a):\n    " + body + "\n")
    before = world.snapshot()
    result = REGISTRY["python"](RewardSpec(name="r", type="python", source=source), "p", "c", "a")
    assert result.value == 0.0, result.reason
    contained(world, before)


def test_honest_programs_still_work(world: Surroundings) -> None:
    """The sandbox keeps what honest code needs: its own folder, stdlib, threads, stdout."""
    program = (
        "import os, tempfile, threading, json\n"
        "open('scratch.txt', 'w').write('hello')\n"
        "handle, name = tempfile.mkstemp()\n"
        "t = threading.Thread(target=print, args=('hi',))\nt.start()\nt.join()\n"
        "def solve(x):\n    return x * x + 1\n"
        "def read():\n    return open('scratch.txt').read()\n"
    )
    tests = [
        "assert solve(2) == 5",
        "assert read() == 'hello'",
        "expected = (1, 1)\nassert (solve(0), solve(1) - 1) == expected",
        "assert abs(solve(0.5) - 1.25) < 1e-9",
        "assert sorted({solve(1), solve(0)}) == [1, 2]",
    ]
    result = REGISTRY["code"](RewardSpec(name="t", type="code"), "p", program, json.dumps(tests))
    assert (result.value, result.reason) == (1.0, None)
    io = json.dumps([{"input": "4", "output": "17"}])
    echo = "import sys\nprint(int(sys.stdin.read()) ** 2 + 1)\n"
    assert REGISTRY["code"](RewardSpec(name="t", type="code"), "p", echo, io).value == 1.0


def test_the_sandbox_folder_is_removed(world: Surroundings) -> None:
    result = run_child(
        "import os\nos.makedirs('a/b')\nopen('a/b/f', 'w').write('x')\nos.chmod('a', 0)\n"
        "print(os.getcwd())\n",
        b"",
        time_limit=5,
        memory=512 << 20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"/tmp"
    assert not any(p.name.startswith("rft-sandbox-") for p in Path("/tmp").iterdir())
