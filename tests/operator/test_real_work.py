"""The operator path on real work: the real operator process (`python -m rft_operator`)
against kmock, and the process kubelet running the pods it creates — vLLM sampler
Deployment, scoring Job, DeepSpeed training Job — on the small real model. While the run
goes on, the operator is killed with SIGKILL in every stage, and the scoring and training
pods' processes are killed mid-work (the Job controller makes new pods). The run must end
as an uninterrupted one would, with a real gain, no child made twice, no prompt scored
twice, and training resumed from its last checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import pytest

from rft_operator.kube import Kube
from rft_operator.kubelet import Node, ProcessKubelet
from rft_operator.local import IMAGE_ENV
from rft_runtime.bundled_models import cache_root, prepare

from ..conftest import ROOT
from ..support.operator_process import operator_command, operator_env
from .test_operator import condition, creations, status_of

RUN = "arith"
RUN_KEY = ("rft.dev/v1alpha1/rftruns", "ml", RUN)
PROMPTS, SAMPLES, EVAL = 200, 8, 100
CHECKPOINT_EVERY = 2
MIN_GAIN = 0.15  # one iteration of the arith example gains ~0.4 on 300 prompts


def manifest() -> dict[str, Any]:
    return {
        "apiVersion": "rft.dev/v1alpha1",
        "kind": "RFTRun",
        "metadata": {
            "name": RUN,
            "namespace": "ml",
            "uid": "uid-real",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {
            "model": {"uri": "pvc://models/smollm2-135m-instruct", "maxModelLen": 512},
            "data": {"train": "pvc://data/train.jsonl", "idField": "id"},
            "iterations": {"max": 1},
            "sampler": {
                "samplesPerPrompt": SAMPLES,
                "temperature": 1.0,
                "maxTokens": 48,
                "concurrency": 32,
            },
            "rewards": [{"name": "answer", "type": "numeric", "weight": 1.0}],
            "filter": {"minReward": 1.0, "maxPerPrompt": 2, "dedup": True},
            "training": {
                "method": "sft",
                "mode": "lora",
                "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
                "epochs": 2,
                "learningRate": 2.0e-4,
                "batchSize": 8,
                "maxSeqLen": 128,
                "checkpointEverySteps": CHECKPOINT_EVERY,
            },
            "evaluation": {"sets": [{"name": "add", "uri": "pvc://data/eval.jsonl"}]},
        },
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Operator:
    """The operator as its own process, so it can be SIGKILLed like a pod's container."""

    def __init__(self, server: str, log: Path) -> None:
        self.server, self.log, self.starts = server, log, 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                operator_command(free_port()),
                env=operator_env(self.server, 2),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the operator died by itself"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
            self.proc.kill()


async def wait_until(
    cluster: Any, check: Callable[[], bool], what: str, timeout: float = 1200.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # kmock matches each request against its whole request log (quadratic); this test
        # reads objects, not requests, so only the newest entries are kept
        if len(cluster._requests) > 256:
            del cluster._requests[:-16]
        if check():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def stage(cluster: Any) -> str:
    return str(status_of(cluster).get("stage") or "")


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().split("\n") if x.strip()]


def kill_pod_process(kubelet: ProcessKubelet, owner: str) -> int:
    """SIGKILL the whole process group of the running pod of `owner` (a container crash)."""
    [process] = [p for key, p in kubelet.processes.items() if key.startswith(f"ml/{owner}-")]
    os.killpg(process.popen.pid, signal.SIGKILL)
    return process.popen.pid


@pytest.mark.slow
async def test_operator_runs_real_work_through_every_kill(cluster: Any, tmp_path: Path) -> None:
    prepare("smollm2-135m")
    data = tmp_path / "data"
    data.mkdir()
    source = ROOT / "examples" / "data" / "arith"
    train_rows = (source / "train.jsonl").read_text().splitlines()[:PROMPTS]
    (data / "train.jsonl").write_text("\n".join(train_rows) + "\n")
    eval_rows = (source / "eval.jsonl").read_text().splitlines()[:EVAL]
    (data / "eval.jsonl").write_text("\n".join(eval_rows) + "\n")
    storage = tmp_path / "storage"
    server = str(cluster.url).rstrip("/")
    kubelet = ProcessKubelet(
        Kube(kopf.ConnectionInfo(server=server, insecure=True)),
        Node(
            claims={
                "models": str(cache_root() / "models"),
                "data": str(data),
                "rft-runs": str(storage),
            },
            pods_dir=tmp_path / "pods",
            image_env={k: os.environ[k] for k in IMAGE_ENV if k in os.environ},
        ),
        tmp_path / "kubelet",
        python_bin=str(Path(sys.executable).parent),
    )
    node = asyncio.create_task(kubelet.run_forever(1.0))
    operator = Operator(server, tmp_path / "operator.log")
    run_dir = storage / RUN / "it-0"
    killed: dict[str, Any] = {}
    cluster.objects[RUN_KEY] = manifest()
    operator.start()
    try:
        # 1. the operator dies while the first sampler starts
        await wait_until(
            cluster, lambda: stage(cluster) == "StartingSampler", "StartingSampler", 120
        )
        operator.kill()
        operator.start()
        # 2. ... and while sampling; the scoring pod's process dies halfway too
        await wait_until(cluster, lambda: stage(cluster) == "Sampling", "Sampling")
        await wait_until(
            cluster,
            lambda: len(lines(run_dir / "progress" / "train.jsonl")) >= PROMPTS // 4,
            "a quarter of the prompts sampled",
        )
        operator.kill()
        killed["score"] = kill_pod_process(kubelet, f"{RUN}-it0-score")
        operator.start()
        # 3. ... and while training, after a checkpoint; the training pod's process dies too
        await wait_until(cluster, lambda: stage(cluster) == "Training", "Training")
        await wait_until(
            # DeepSpeed writes `latest` once a checkpoint is complete
            cluster,
            lambda: (run_dir / "train-state" / "latest").exists(),
            "a training checkpoint",
        )
        operator.kill()
        killed["train"] = kill_pod_process(kubelet, f"{RUN}-it0-train")
        operator.start()
        # 4. ... and during the final evaluation
        await wait_until(
            cluster,
            lambda: (
                stage(cluster) == "Evaluating"
                or condition(status_of(cluster), "Succeeded").get("status") == "True"
            ),
            "the final evaluation",
        )
        operator.kill()
        operator.start()
        await wait_until(
            cluster,
            lambda: (
                condition(status_of(cluster), "Succeeded").get("status") == "True"
                or condition(status_of(cluster), "Failed").get("status") == "True"
            ),
            "the run to end",
        )
    finally:
        operator.stop()
        node.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await node
        kubelet.stop_all()
        print((tmp_path / "operator.log").read_text()[-3000:])

    status = status_of(cluster)
    # the same end as an uninterrupted run: iterations.max = 1 → one trained iteration
    assert condition(status, "Succeeded")["status"] == "True", status.get("message")
    assert condition(status, "Succeeded")["reason"] == "MaxIterations"
    assert [i["index"] for i in status["iterations"]] == [0]
    gain = status["best"]["evalScore"] - status["baseline"]["evalScore"]
    assert gain >= MIN_GAIN, f"gain {gain:.3f}: {status['baseline']} → {status['iterations']}"
    assert status["best"]["checkpoint"] == f"pvc://rft-runs/{RUN}/it-0/checkpoint"
    assert operator.starts == 5

    # no child was created twice, although the operator restarted four times
    made = creations(cluster)
    assert set(made) == {  # one long-lived sampler: policy 1 was loaded into it in place
        f"{RUN}-sampler",
        f"{RUN}-it0-score",
        f"{RUN}-it0-train",
        f"{RUN}-it1-score",
    }
    assert all(count == 1 for count in made.values()), made
    loaded = [
        json.loads(f.read_text()) for f in (storage / RUN / "sampler" / "loaded").glob("*.json")
    ]
    assert any(entry["path"].endswith("it-0/checkpoint") for entry in loaded), loaded

    # no prompt scored twice: the restarted scoring pod sent only what was missing
    progress = lines(run_dir / "progress" / "train.jsonl")
    ids = [row["id"] for row in progress]
    assert len(ids) == len(set(ids)) == PROMPTS
    samples = lines(run_dir / "samples.jsonl")
    assert len(samples) == PROMPTS * SAMPLES

    # the pods: the killed ones ended with 137 and a new pod took over from their work
    pod_dirs = sorted((tmp_path / "pods").iterdir())
    score_pods = [p for p in pod_dirs if p.name.startswith(f"{RUN}-it0-score-")]
    train_pods = [p for p in pod_dirs if p.name.startswith(f"{RUN}-it0-train-0-")]
    assert len(score_pods) == 2 and len(train_pods) == 2
    train_logs = [(p / "log").read_text(errors="replace") for p in train_pods]
    [killed_log] = [log for log in train_logs if "resumed from" not in log]
    [resumed_log] = [log for log in train_logs if "resumed from" in log]
    match = re.search(r"resumed from \S+ at step (\d+)", resumed_log)
    assert match is not None
    resumed_at = int(match.group(1))
    reached = max(int(s) for s in re.findall(r"step (\d+)/\d+", killed_log))
    assert resumed_at >= CHECKPOINT_EVERY  # it had checkpointed before it was killed
    assert reached - resumed_at <= CHECKPOINT_EVERY  # at most one interval of steps redone
    summary = json.loads((run_dir / "train-metrics.json").read_text())
    assert summary["resumed_from_step"] == resumed_at
    assert summary["steps"] == summary["steps_this_run"] + resumed_at
