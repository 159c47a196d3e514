"""End to end: `rft run examples/arith-smollm2.yaml --local` on the real small model — the
operator's reconcile pass and the process kubelet running the pods of its manifests (vLLM
sampling, math rewards, LoRA SFT under DeepSpeed, greedy evaluation). The executor is
killed with SIGKILL (a closed terminal, the OOM killer) in every stage and run again; each
rerun must stop what the killed one left running before anything starts again, and the
example's three iterations must still reach held-out pass@1 0.85 (issue 17's bar; two
uninterrupted runs reached 0.920 and 0.925, see BENCHMARKS.md), with the guard set never
more than 2 points below its baseline."""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from ..conftest import ROOT

EXAMPLE = ROOT / "examples" / "arith-smollm2.yaml"
RUN = "arith-smollm2"
MIN_PASS_AT_1 = 0.85  # held-out add/pass@1 of the best iteration
GUARD_ALLOWED_DROP = 0.02
ITERATIONS = 3  # the example's own iterations.max


def example(tmp: Path) -> Path:
    """The example as shipped, with ITERATIONS iterations."""
    document = yaml.safe_load(EXAMPLE.read_text())
    assert document["spec"]["iterations"]["max"] == ITERATIONS
    document["spec"]["iterations"]["max"] = ITERATIONS
    path = tmp / EXAMPLE.name
    path.write_text(yaml.safe_dump(document))
    return path


def window_ids(manifest: Path, iteration: int) -> list[str]:
    """The ids of the prompts iteration k samples: the k-th run of `promptsPerIteration`
    lines of the example's data file (in examples/data), or all of them."""
    data = yaml.safe_load(manifest.read_text())["spec"]["data"]
    path = ROOT / "examples" / "data" / data["train"].removeprefix("pvc://data/")
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]
    size = data.get("promptsPerIteration")
    if not size or size >= len(ids):
        return ids
    assert (iteration + 1) * size <= len(ids), "the test reads windows that do not wrap"
    return ids[iteration * size : (iteration + 1) * size]


def command(manifest: Path, workdir: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "rft_operator.cli", "run", str(manifest), "--local"),
        *("--workdir", str(workdir), "--pvc", f"data={ROOT / 'examples' / 'data'}"),
    ]


def status(workdir: Path) -> dict[str, Any]:
    path = workdir / "status.json"
    if not path.exists():
        return {}
    value: dict[str, Any] = json.loads(path.read_text())
    return value


def wait_for(
    check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 1500
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"run exited ({proc.returncode}) before {what}")
        time.sleep(1)
    raise AssertionError(f"no {what} within {timeout} s")


def recorded_pids(workdir: Path) -> list[int]:
    """The pods' processes the kubelet recorded as running."""
    return [
        json.loads(p.read_text())["pid"] for p in (workdir / "cluster" / "kubelet").glob("*.json")
    ]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_tree(pid: int) -> None:
    """Kill a run and everything it started, whatever happened (never leak servers)."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    for proc in [*root.children(recursive=True), root]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def progress_lines(workdir: Path, iteration: int = 0) -> list[dict[str, Any]]:
    path = workdir / "storage" / RUN / f"it-{iteration}" / "progress" / "train.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().split("\n") if x.strip()]


@pytest.mark.slow
def test_arith_rft_reaches_085_through_sigkill_in_every_stage(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    manifest = example(tmp_path)
    model = subprocess.run(
        [sys.executable, "-m", "rft_operator.cli", "models", "prepare"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert Path(model.stdout.strip(), "config.json").exists()
    kills: list[tuple[str, Callable[[], bool]]] = [
        (
            "StartingSampler",
            lambda: (
                status(workdir).get("stage") == "StartingSampler" and bool(recorded_pids(workdir))
            ),
        ),
        ("Sampling", lambda: len(progress_lines(workdir)) >= 50),
        # a complete checkpoint (DeepSpeed writes `latest` last): training resumes from it
        (
            "Training",
            lambda: (workdir / "storage" / RUN / "it-0" / "train-state" / "latest").exists(),
        ),
        (
            "Evaluating",
            lambda: status(workdir).get("stage") == "Evaluating" and bool(recorded_pids(workdir)),
        ),
    ]
    leftovers: list[int] = []
    logs: list[str] = []
    final = None
    for index, (stage, reached) in enumerate([*kills, ("end", lambda: False)]):
        log = tmp_path / f"run-{index}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command(manifest, workdir),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            if stage == "end":
                final = proc.wait(timeout=3600)
                logs.append(log.read_text(errors="replace"))
                break
            wait_for(reached, proc, f"the {stage} stage")
            if leftovers:  # the previous run's pods were stopped before this one went on
                assert not [pid for pid in leftovers if alive(pid)]
            leftovers = recorded_pids(workdir)
            assert leftovers, f"no pod process was running in {stage}"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert all(alive(pid) for pid in leftovers)  # a SIGKILLed executor stops nothing
            logs.append(log.read_text(errors="replace"))
        finally:
            if proc.poll() is None:
                stop_tree(proc.pid)
    for pid in leftovers:
        assert not alive(pid)
    assert final == 0, logs[-1][-3000:]
    assert sum("Adopted: stopped" in text for text in logs) == len(kills)

    result = status(workdir)
    assert result["stage"] == "Succeeded"
    # each evaluation ran on its own policy: the long-lived sampler loaded every new one
    # (a stale policy would answer all 200 held-out prompts exactly as the previous one did)
    storage = workdir / "storage" / RUN
    answers = [
        {row["id"]: row["completions"][0]["text"] for row in map(json.loads, lines)}
        for lines in (
            [x for x in path.read_text().splitlines() if x]
            for path in sorted(storage.glob("it-*/progress/eval-add.jsonl"))
        )
    ]
    iterations = ITERATIONS
    assert len(answers) == iterations + 1
    assert all(before != after for before, after in itertools.pairwise(answers))
    assert [i["index"] for i in result["iterations"]] == list(range(iterations))
    base = result["baseline"]["evalScores"]
    best = result["best"]
    assert best["evalScore"] >= MIN_PASS_AT_1, f"base {base}, best {best}, {result['iterations']}"
    # the guard set never falls more than 2 points below its baseline, in any iteration
    guard = [i["evalScores"]["mul-guard/pass@1"] for i in result["iterations"]]
    assert min(guard) >= base["mul-guard/pass@1"] - GUARD_ALLOWED_DROP, guard
    # the scoring pod killed mid-sampling resumed: every prompt of its window was sampled
    # exactly once, and each iteration sampled its own window of the training prompts
    for k in range(iterations):
        ids = [row["id"] for row in progress_lines(workdir, k)]
        assert len(ids) == len(set(ids)) and set(ids) == set(window_ids(manifest, k)), k

    # every artifact is there, and `rft status` prints the table
    run_dir = workdir / "storage" / RUN
    for k in range(iterations):
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
            assert (run_dir / f"it-{k}" / name).exists(), f"missing it-{k}/{name}"
    assert (run_dir / f"it-{iterations}" / "eval" / "add.jsonl").exists()  # final evaluation
    table = subprocess.run(
        [sys.executable, "-m", "rft_operator.cli", "status", str(workdir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert table.splitlines()[0].split()[:3] == ["iteration", "add/pass@1", "mul-guard/pass@1"]
    assert "base" in table and "best: iteration" in table
