"""What a user reads about cluster runs: `rft status/report/logs` through a kubeconfig,
and the operator's /metrics scraped while runs progress and after one is deleted — the
real operator against kmock, with a run finished and a run held in training."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from rft_operator.cli import main

from ..conftest import ROOT
from ..support.operator_process import operator_command, operator_env
from ..support.stub_kubelet import Kubelet, Outcome
from .conftest import operator_running
from .test_operator import condition, manifest, succeed_all, wait_for

RUNS = "rft.dev/v1alpha1/rftruns"


def two_runs(cluster: Any) -> None:
    """`done` (2 iterations) runs to the end; `busy` stays in iteration 1's training."""
    for name, iterations in (("done", 2), ("busy", 3)):
        obj = manifest(iterations={"max": iterations})
        obj["metadata"].update(name=name, uid=f"uid-{name}")
        obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
        cluster.objects[RUNS, "ml", name] = obj


def hold_busy_training(name: str, job: dict[str, Any]) -> Outcome:
    return None if name == "busy-it1-train" else succeed_all(name, job)


def status(cluster: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = dict(cluster.objects[RUNS, "ml", name]).get("status") or {}
    return found


def settled(cluster: Any) -> bool:
    return (
        condition(status(cluster, "done"), "Succeeded").get("status") == "True"
        and status(cluster, "busy").get("stage") == "Training"
        and status(cluster, "busy").get("iteration") == 1
    )


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "ml", "context": {"cluster": "kmock", "user": "me", "namespace": "ml"}}
                ],
                "current-context": "ml",
            }
        )
    )
    return path


async def rft(*args: str) -> Any:
    """The CLI in a worker thread (kmock answers from this test's event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), catch_exceptions=False)


async def test_rft_status_report_and_logs_read_cluster_runs(
    cluster: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    two_runs(cluster)
    async with Kubelet(str(cluster.url), hold_busy_training), operator_running():
        await wait_for(lambda: settled(cluster), what="one run finished, one in training")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", str(cluster.url))))

    busy = await rft("status", "busy")  # the context's namespace: ml
    assert busy.exit_code == 0, busy.output
    lines = busy.output.splitlines()
    assert lines[0].split()[:2] == ["iteration", "main/pass@1"]  # the local run's table
    assert lines[2].split() == ["base", "0.100"]
    assert lines[3].split()[:5] == ["0", "0.300", "0.200", "10", "0.300"]
    assert lines[4].split()[:4] == ["1", "-", "0.200", "11"]
    assert "stage: Training — iteration 1: training on 11 samples" in busy.output
    assert "best: iteration 0 (0.300)" in busy.output
    pods = lines[lines.index("pods:") + 1 :]
    assert [p.split()[0] for p in pods] == [
        "busy-it0-score-0-abcde",
        "busy-it0-train-0-abcde",
        "busy-it1-score-0-abcde",
    ]

    done = await rft("status", "done", "-n", "ml")
    assert done.exit_code == 0, done.output
    assert "stage: Succeeded" in done.output
    assert "best: iteration 1 (0.500)" in done.output

    listing = await rft("status")
    rows = [line.split() for line in listing.output.splitlines()]
    assert rows[0] == ["NAMESPACE", "NAME", "STAGE", "ITERATION", "BEST", "AGE"]
    assert rows[1][:5] == ["ml", "busy", "Training", "1", "0.300"]
    assert rows[2][:5] == ["ml", "done", "Succeeded", "2", "0.500"]

    png = tmp_path / "done.png"
    report = await rft("report", "done", "-n", "ml", "--out", str(png))
    assert report.exit_code == 0, report.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the pods still there are busy's finished scoring pods (Jobs' pods outlive them here)
    cluster["get /api/v1/namespaces/ml/pods/busy-it1-score-0-abcde/log"] << b"it 1 scored\n"
    logs = await rft("logs", "busy", "--stage", "score", "--iteration", "1")
    assert logs.exit_code == 0, logs.output
    assert logs.output.splitlines() == ["==> pod busy-it1-score-0-abcde <==", "it 1 scored"]
    none = await rft("logs", "busy", "--stage", "train", "--iteration", "1")  # not started here
    assert none.exit_code == 1
    assert "RFTRun busy has no pods of stage train in iteration 1 now" in none.output

    missing = await rft("status", "nope")
    assert missing.exit_code == 1 and "RFTRun ml/nope: not found" in missing.output


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def of_run(scraped: dict[tuple[str, Any], float], run: str) -> dict[tuple[str, Any], float]:
    return {k: v for k, v in scraped.items() if ("run", run) in k[1]}


@contextlib.asynccontextmanager
async def operator_process(server: str, log: Path, metrics: int) -> AsyncIterator[None]:
    from .test_real_work import free_port

    with log.open("wb") as out:
        proc = subprocess.Popen(
            operator_command(free_port(), metrics),
            env=operator_env(server, 1),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        yield
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(proc.wait, 20)
        proc.kill()


async def test_metrics_show_each_run_and_forget_a_deleted_one(cluster: Any, tmp_path: Path) -> None:
    from .test_real_work import free_port

    two_runs(cluster)
    # a third run whose scoring Job the API server refuses: its reconcile passes fail
    cluster.objects["v1/namespaces", None, "bad"] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "bad"},
    }
    broken = manifest()
    broken["metadata"].update(name="broken", namespace="bad", uid="uid-broken")
    cluster.objects[RUNS, "bad", "broken"] = broken
    cluster["post /apis/batch/v1/namespaces/bad/jobs"] << 500
    port = free_port()

    async def scrape() -> dict[tuple[str, Any], float]:
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return samples(await response.text())

    server = str(cluster.url).rstrip("/")
    async with (
        Kubelet(str(cluster.url), hold_busy_training),
        operator_process(server, tmp_path / "operator.log", port),
    ):
        await wait_for(lambda: settled(cluster), what="one run finished, one in training")
        scraped: dict[tuple[str, Any], float] = {}

        async def errors_counted() -> bool:
            nonlocal scraped
            with contextlib.suppress(aiohttp.ClientError):
                scraped = await scrape()
            key = ("rft_reconcile_errors_total", (("namespace", "bad"), ("run", "broken")))
            return scraped.get(key, 0) >= 1 and bool(of_run(scraped, "busy"))

        for _ in range(600):
            if await errors_counted():
                break
            await asyncio.sleep(0.1)
        done, busy = of_run(scraped, "done"), of_run(scraped, "busy")
        ml = (("namespace", "ml"),)

        def key(name: str, run: str, **labels: str) -> tuple[str, Any]:
            return (name, tuple(sorted((*ml, ("run", run), *labels.items()))))

        assert done[key("rft_runs", "done", stage="Succeeded")] == 1
        assert busy[key("rft_runs", "busy", stage="Training")] == 1
        assert [k for k in busy if k[0] == "rft_runs"] == [
            key("rft_runs", "busy", stage="Training")
        ]
        assert busy[key("rft_run_iteration", "busy")] == 1
        assert done[key("rft_run_best_eval_score", "done")] == 0.5
        assert busy[key("rft_run_best_eval_score", "busy")] == 0.3
        assert done[key("rft_run_eval_score", "done", iteration="-1")] == 0.1
        assert done[key("rft_run_eval_score", "done", iteration="1")] == 0.5
        assert done[key("rft_run_kept_samples", "done", iteration="1")] == 11
        assert done[key("rft_run_stage_seconds", "done", iteration="0", stage="sampling")] == 2.0
        assert done[key("rft_run_stage_seconds", "done", iteration="0", stage="evaluation")] == 1.0
        assert not any(k[0] == "rft_reconcile_errors_total" for k in done)
        broken_errors = ("rft_reconcile_errors_total", (("namespace", "bad"), ("run", "broken")))
        assert scraped[broken_errors] >= 1

        async with aiohttp.ClientSession() as session:
            path = f"{server}/apis/rft.dev/v1alpha1/namespaces/ml/rftruns/done"
            async with session.delete(path) as response:
                assert response.status < 300
        for _ in range(300):
            scraped = await scrape()
            if not of_run(scraped, "done"):
                break
            await asyncio.sleep(0.1)
        assert of_run(scraped, "done") == {}, "a deleted run's series must disappear"
        assert of_run(scraped, "busy")  # the other runs' series stay
        assert scraped[broken_errors] >= 1


def test_without_a_cluster_a_mistyped_run_directory_is_named(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-config"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(main, ["status", str(tmp_path / "typo")])
    assert result.exit_code == 1 and result.exception is not None
    assert f"{tmp_path / 'typo'} is not a run directory" in result.output
    assert "set KUBECONFIG (or --context)" in result.output
