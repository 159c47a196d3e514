"""The hostile-completion suite again as an unprivileged user with the runtime pod's
process settings (non-root uid 65534, no_new_privs, no capabilities in any set), and the
refusal where user namespaces are unavailable. Both need root to set up (CI runs as root);
elsewhere they skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = "tests/unit/test_code_sandbox.py"
TOOLS = all(shutil.which(t) for t in ("unshare", "setpriv", "mount", "bwrap"))

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not TOOLS, reason="needs root with unshare, setpriv, mount and bwrap"
)

# In a private mount namespace, make the interpreter reachable for uid 65534 when it lives
# under /root (mode 700 here), then drop to the pod's settings and run the suite.
DROP = r"""
set -e
for dir in "$@"; do
  case "$dir" in /root/*)
    keep=$(mktemp -d); mount --bind /root "$keep"
    mount -t tmpfs -o mode=755 tmpfs /root
    rel=${dir#/root/}; mkdir -p "/root/$rel"; mount --bind "$keep/$rel" "/root/$rel"
    break;;
  esac
done
exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
  --inh-caps=-all --bounding-set=-all -- "$PYTHON" -m pytest -q -p no:cacheprovider \
  --basetemp="$BASETEMP" "$SUITE"
"""


@needs_root
def test_hostile_suite_as_unprivileged_user() -> None:
    basetemp = Path(tempfile.mkdtemp(prefix="rft-nobody-"))  # pytest's own is root-only
    basetemp.chmod(0o755)
    os.chown(basetemp, 65534, 65534)
    try:
        _run_as_nobody(basetemp)
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)


def _run_as_nobody(basetemp: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHON": sys.executable,
        "BASETEMP": str(basetemp / "t"),
        "SUITE": SUITE,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "operator")]),
        "HOME": str(basetemp),
    }
    prefixes = sorted({sys.base_prefix, sys.prefix, os.path.realpath(sys.prefix)})
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", DROP, "sh", *prefixes],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail, tail


REFUSE = """
import json
from rft_runtime.config.spec import RewardSpec
from rft_runtime.rewards import REGISTRY
from rft_runtime.rewards.sandbox import SandboxUnavailable, require_for
try:
    require_for(["code"])
    refused = None
except SandboxUnavailable as exc:
    refused = str(exc)
spec = RewardSpec(name="t", type="code")
result = REGISTRY["code"](spec, "p", "def f():\\n    return 1", json.dumps(["assert f() == 1"]))
require_for(["math"])  # rewards without a sandbox still run
print(json.dumps({"refused": refused, "value": result.value, "reason": result.reason}))
"""


@needs_root
def test_code_rewards_refuse_without_namespaces() -> None:
    """As in a pod whose seccomp profile forbids namespaces: a clear refusal naming the
    setting, never an unconfined run."""
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" -c "$1"'
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", script, sys.executable, REFUSE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'operator'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["refused"] and "spec.runtime.sandbox.seccompProfile" in report["refused"]
    assert report["value"] == 0.0 and report["reason"].startswith("SandboxUnavailable")
