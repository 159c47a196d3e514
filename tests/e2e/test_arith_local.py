"""End to end: `rft run examples/arith-smollm2.yaml --local` on the real small model — vLLM
sampling, math rewards, LoRA SFT under DeepSpeed, greedy evaluation — interrupted during
training and resumed, and it must raise held-out pass@1 by at least 30 points."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from ..conftest import ROOT

EXAMPLE = ROOT / "examples" / "arith-smollm2.yaml"
RUN = "arith-smollm2"
MIN_GAIN = 0.30
GUARD_ALLOWED_DROP = 0.02


def command(workdir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rft_operator.cli",
        "run",
        str(EXAMPLE),
        "--local",
        "--workdir",
        str(workdir),
    ]


def status(workdir: Path) -> dict[str, Any]:
    path = workdir / "status.json"
    if not path.exists():
        return {}
    value: dict[str, Any] = json.loads(path.read_text())
    return value


def wait_for_stage(
    workdir: Path, proc: subprocess.Popen[bytes], stage: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status(workdir).get("stage") == stage:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run exited ({proc.returncode}) before reaching {stage}")
        time.sleep(2)
    raise AssertionError(f"no {stage} stage within {timeout} s")


def wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"run exited ({proc.returncode}) before printing {text!r}")
        time.sleep(1)
    raise AssertionError(f"{text!r} not printed within {timeout} s")


def stop_tree(pid: int) -> None:
    """Kill a run and everything it started, whatever happened (never leak servers)."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    for proc in [*root.children(recursive=True), root]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


@pytest.mark.slow
def test_arith_rft_gains_thirty_points_and_resumes_after_an_interrupt(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    model = subprocess.run(
        [sys.executable, "-m", "rft_operator.cli", "models", "prepare"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert Path(model.stdout.strip(), "config.json").exists()

    # 1. start, and interrupt (Ctrl-C) while the first training runs
    first_log = (tmp_path / "first.log").open("wb")
    first = subprocess.Popen(command(workdir), cwd=ROOT, stdout=first_log, stderr=subprocess.STDOUT)
    try:
        wait_for_stage(workdir, first, "Training", timeout=1500)
        wait_for_text(tmp_path / "first.log", "rft.train step", first, timeout=900)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130
    finally:
        stop_tree(first.pid)
    interrupted = status(workdir)
    assert interrupted["stage"] == "Training" and interrupted.get("iteration", 0) == 0
    samples = workdir / "it-0" / "samples.jsonl"
    scored_at = samples.stat().st_mtime
    finished = json.loads((workdir / "children.json").read_text())
    assert finished[f"{RUN}-it0-score"]["phase"] == "Succeeded"
    assert f"{RUN}-it0-train" not in finished  # interrupted, not finished

    # 2. the same command resumes: scoring 0 is not redone, training continues
    second = subprocess.run(
        command(workdir), cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False
    )
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert f"[{RUN}-it0-score]" not in output  # no stage redone
    assert f"{RUN}-it0-sampler" not in output
    assert samples.stat().st_mtime == scored_at

    final = status(workdir)
    assert final["stage"] == "Succeeded"
    assert [i["index"] for i in final["iterations"]] == [0, 1]  # iterations.max = 2
    base = final["baseline"]["evalScores"]
    best = final["best"]
    gain = best["evalScore"] - base["add/pass@1"]
    assert gain >= MIN_GAIN, f"gain {gain:.3f}: base {base}, best {best}, {final['iterations']}"
    best_scores = next(i for i in final["iterations"] if i["index"] == best["iteration"])[
        "evalScores"
    ]
    assert best_scores["mul-guard/pass@1"] >= base["mul-guard/pass@1"] - GUARD_ALLOWED_DROP

    # 3. every artifact is there, and `rft status` prints the table
    for k in (0, 1):
        folder = workdir / f"it-{k}"
        for name in (
            "samples.jsonl",
            "sft.jsonl",
            "metrics.json",
            "train-metrics.json",
            "checkpoint/config.json",
            "checkpoint/model.safetensors",
            "eval/add.jsonl",
            "eval/mul-guard.jsonl",
        ):
            assert (folder / name).exists(), f"missing {folder / name}"
    assert (workdir / "it-2" / "eval" / "add.jsonl").exists()  # the final evaluation
    table = subprocess.run(
        [sys.executable, "-m", "rft_operator.cli", "status", str(workdir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert table.splitlines()[0].split()[:3] == ["iteration", "add/pass@1", "mul-guard/pass@1"]
    assert "base" in table and "best: iteration" in table
