"""The console of `rft run --local` on a real tiny run (2 iterations, 16 prompts x 2
samples, 16 eval prompts): with stdout a pipe it prints a line per finished stage, a few
progress lines and the table — no control codes, no child output — within 40 lines, and
each pod's whole output is in its own log file."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ..conftest import ROOT
from .test_arith_local import stop_tree

PROMPTS = 16
MANIFEST = """\
apiVersion: rft.dev/v1alpha1
kind: RFTRun
metadata: {name: tiny}
spec:
  model: {uri: pvc://models/smollm2-135m-instruct, maxModelLen: 512}
  data: {train: pvc://data/train.jsonl, idField: id}
  iterations: {max: 2}
  sampler: {samplesPerPrompt: 2, temperature: 1.0, maxTokens: 24, concurrency: 16}
  rewards: [{name: answer, type: numeric, weight: 1.0}]
  # keep every sample (up to 2 per prompt, cut ones too): both iterations train, whatever
  # the model says
  filter: {minReward: 0.0, maxPerPrompt: 2, dedup: false, dropTruncated: false}
  training:
    method: sft
    mode: lora
    epochs: 1
    batchSize: 8
    maxSeqLen: 96
  evaluation:
    sets: [{name: add, uri: pvc://data/eval.jsonl}]
"""
STAGES = [  # one sampler for the run (sampler.keepAlive): each policy is loaded in place
    "it 0 sampler",
    "base eval",
    "it 0 sample",
    "it 0 train",
    "it 0 eval",
    "it 1 sample",
    "it 1 train",
    "it 1 eval",
]


def copy_lines(proc: subprocess.Popen[bytes], path: Path) -> None:
    assert proc.stdout is not None
    with path.open("wb") as copy:
        for line in proc.stdout:
            copy.write(line)
            copy.flush()


@pytest.mark.slow
def test_a_tiny_two_iteration_run_prints_a_short_plain_console(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    source = ROOT / "examples" / "data" / "arith"
    for name in ("train", "eval"):
        rows = (source / f"{name}.jsonl").read_text().splitlines()[:PROMPTS]
        (data / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "tiny.yaml").write_text(MANIFEST)
    workdir = tmp_path / "work"
    console = tmp_path / "console.txt"  # a copy, written as the lines arrive
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "rft_operator.cli", "run", str(tmp_path / "tiny.yaml")),
            *("--local", "--workdir", str(workdir)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    copier = threading.Thread(target=copy_lines, args=(proc, console), daemon=True)
    copier.start()
    try:
        returncode = proc.wait(timeout=3600)  # as test_arith_local: a loaded machine is slow
    finally:
        if proc.poll() is None:  # SIGTERM: the executor stops its pods, then the rest goes
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
            stop_tree(proc.pid)
        copier.join(timeout=30)
    result = subprocess.CompletedProcess(proc.args, returncode, console.read_text(), "")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) <= 40, result.stdout
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    stage_lines = [
        " ".join(line.split()[: 2 if line.split()[0] == "base" else 3]) for line in lines
    ]
    found = [s for s in stage_lines if s in STAGES]
    assert found == STAGES, result.stdout
    assert lines[-1].startswith("best: iteration")
    # the children's output is in their log files, not on the console
    logs = {
        p.parent.name: p.read_text(errors="replace") for p in workdir.glob("cluster/pods/*/log")
    }
    train_log = next(text for name, text in logs.items() if "-it0-train-" in name)
    assert "step 1/" in train_log and "step 1/" not in result.stdout
    sampler_log = next(text for name, text in logs.items() if name.startswith("tiny-sampler-"))
    assert sampler_log.strip() and sampler_log.splitlines()[0] not in result.stdout
    # the jobs' live progress files, finished, with their totals
    run_dir = workdir / "storage" / "tiny"
    score = json.loads((run_dir / "it-0" / "live" / "score.json").read_text())
    assert (score["phase"], score["done"], score["total"], score["finished"]) == (
        "sample",
        PROMPTS,
        PROMPTS,
        True,
    )
    train = json.loads((run_dir / "it-1" / "live" / "train.json").read_text())
    assert train["unit"] == "steps" and train["done"] == train["total"] >= 1 and train["loss"]
