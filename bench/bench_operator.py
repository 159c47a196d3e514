"""Benchmark: N concurrent RFTRuns driven through one iteration by the real operator
(a subprocess, `python -m rft_operator`) against kmock, with a test kubelet.

Reports the reconcile latency of each stage transition — from the kubelet's status write
that completes a stage (sampler ready, job finished) to the operator's next write for that
run (the next child created, or the final status) — as p50/p99, and the operator's peak
memory (VmHWM). Run: .venv/bin/python -m bench.bench_operator --runs 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import kmock

from tests.support.emulator import declare_resources
from tests.support.operator_process import operator_command, operator_env
from tests.support.stub_kubelet import Kubelet, Outcome

ROOT = Path(__file__).resolve().parents[1]


LOG: list[tuple[float, str, str, Any]] = []


class TimedEmulator(kmock.KubernetesEmulator):
    """Logs when each request arrives, to measure the operator's reaction times.

    kmock matches every request against its whole request log (quadratic in the number of
    requests), which made the emulator, not the operator, the bottleneck at 100 runs; the
    benchmark needs no request log, so it keeps only the newest entries.
    """

    async def _handle(self, request: Any) -> Any:
        if len(self._requests) > 64:
            del self._requests[:-8]
        method = getattr(request.method, "value", request.method)
        LOG.append((time.monotonic(), str(method), request.url.path, request.data))
        return await super()._handle(request)


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "rft.dev/v1alpha1",
        "kind": "RFTRun",
        "metadata": {
            "name": name,
            "namespace": "bench",
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {
            "model": {"uri": "pvc://models/m"},
            "data": {"train": "pvc://data/train.jsonl"},
            "iterations": {"max": 1},
            "evaluation": {"sets": [{"name": "main", "uri": "pvc://data/eval.jsonl"}]},
        },
    }


def outcome(name: str, job: dict[str, Any]) -> Outcome:
    k = int(name.split("-it")[1].split("-")[0])
    if name.endswith("-score"):
        return (
            "succeed",
            {
                "kind": "score",
                "iteration": k,
                "evalScores": {"main/pass@1": 0.5},
                "samples": 8,
                "accepted": 2,
            },
        )
    return ("succeed", {"kind": "train", "iteration": k, "checkpoint": f"/mnt/rft/x/it-{k}/c"})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_of(path: str, body: Any) -> tuple[str | None, str]:
    """(run name, what) for a request: which run it concerns and whether it is the kubelet
    completing a stage ('done') or the operator acting ('act')."""
    parts = path.split("/")
    if "rftruns" in parts and path.endswith("/status"):
        return parts[parts.index("rftruns") + 1], "status"
    if isinstance(body, dict) and "metadata" in body and "labels" in body["metadata"]:
        return body["metadata"]["labels"].get("rft.dev/run"), "act"
    if path.endswith("/status") and ("deployments" in parts or "jobs" in parts):
        name = parts[-2]
        return name.rsplit("-it", 1)[0], "done"
    return None, ""


async def main(runs: int, timeout: float) -> dict[str, Any]:
    LOG.clear()
    log = LOG
    emulator = TimedEmulator()
    async with emulator, kmock.Server(emulator):
        declare_resources(emulator)
        emulator.objects["v1/namespaces", None, "bench"] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "bench"},
        }
        for i in range(runs):
            emulator.objects["rft.dev/v1alpha1/rftruns", "bench", f"run{i:03d}"] = manifest(
                f"run{i:03d}"
            )
        server = str(emulator.url).rstrip("/")
        operator = subprocess.Popen(
            operator_command(18081),
            env=operator_env(server, 60),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.monotonic()
        done: set[str] = set()
        try:
            async with Kubelet(server, outcome, interval=1.0):
                while time.monotonic() - started < timeout:
                    done = {
                        key[2]
                        for key, obj in emulator.objects.items()
                        if key[0].plural == "rftruns"
                        and not obj.deleted
                        and (dict(obj).get("status") or {}).get("stage") == "Succeeded"
                    }
                    if len(done) == runs:
                        break
                    await asyncio.sleep(0.2)
            wall = time.monotonic() - started
            hwm_kib = peak_memory_kib(operator.pid)
        finally:
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
    latencies = transition_latencies(log)
    return {
        "runs": runs,
        "succeeded": len(done),
        "wall_seconds": round(wall, 2),
        "transitions": len(latencies),
        "latency_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "operator_peak_rss_mib": round(hwm_kib / 1024, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
    }


def transition_latencies(log: list[tuple[float, str, str, Any]]) -> list[float]:
    pending: dict[str, float] = {}
    latencies: list[float] = []
    for stamp, method, path, body in log:
        if method not in ("POST", "PATCH"):
            continue
        run, what = run_of(path, body)
        if run is None:
            continue
        if what == "done" and run not in pending:
            pending[run] = stamp
        elif what in ("act", "status") and run in pending:
            latencies.append(stamp - pending.pop(run))
    return latencies


def peak_memory_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def compare(runs: int, timeout: float) -> dict[str, Any]:
    """The baseline (one run alone) and N concurrent runs, in the same process."""
    baseline = await main(1, timeout)
    loaded = await main(runs, timeout)
    return {
        "baseline_1_run": baseline,
        f"concurrent_{runs}_runs": loaded,
        "p50_ratio_vs_baseline": round(loaded["latency_p50_ms"] / baseline["latency_p50_ms"], 2),
        "p99_ratio_vs_baseline": round(loaded["latency_p99_ms"] / baseline["latency_p99_ms"], 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(compare(args.runs, args.timeout)), indent=2))
