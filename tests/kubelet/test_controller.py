"""The process kubelet on small real processes (no model): Jobs finish with their
termination message, fail and restart within backoffLimit, Indexed Jobs get their index
and host names, Deployments become ready through their probe, queues admit, suspended
Jobs stop, deleted owners take their children with them, and a new kubelet stops what a
killed one left running."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rft_operator.kubelet import Node, ProcessKubelet
from rft_operator.kubelet.processes import process_start_time
from rft_operator.local_store import LocalStore

PY = sys.executable


def job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ml", "labels": {"app": name}},
        "spec": {
            "backoffLimit": 1,
            "suspend": False,
            **spec,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "main",
                            "command": [PY, "-c", script],
                            "env": [
                                {
                                    "name": "INDEX",
                                    "valueFrom": {
                                        "fieldRef": {
                                            "fieldPath": "metadata.annotations"
                                            "['batch.kubernetes.io/job-completion-index']"
                                        }
                                    },
                                },
                                {"name": "OUT", "value": "/mnt/out"},
                            ],
                            "volumeMounts": [{"name": "out", "mountPath": "/mnt/out"}],
                        }
                    ],
                    "volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": "out"}}],
                },
            },
        },
    }


@pytest.fixture
def setup(tmp_path: Path) -> tuple[LocalStore, ProcessKubelet, Path]:
    store = LocalStore(tmp_path / "objects.json")
    out = tmp_path / "out"
    out.mkdir()
    kubelet = ProcessKubelet(
        store,
        Node(claims={"out": str(out)}, pods_dir=tmp_path / "pods", image_env=dict(os.environ)),
        tmp_path / "state",
        restart_delay=0.1,
        probe_period=0.2,
        python_bin=str(Path(PY).parent),
    )
    return store, kubelet, out


async def until(kubelet: ProcessKubelet, check: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await kubelet.tick()
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def job_status(store: LocalStore, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (await store.get("batch/v1", "Job", "ml", name)).get("status") or {}
    return status


def done(store: LocalStore, name: str, kind: str = "Complete") -> Callable[[], Any]:
    async def check() -> bool:
        conditions = (await job_status(store, name)).get("conditions") or []
        return any(c["type"] == kind for c in conditions)

    return check


async def pods_of(store: LocalStore, name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in await store.list_all("v1", "Pod")
        if p["metadata"]["ownerReferences"][0]["name"] == name
    ]


async def test_job_completes_with_its_termination_message(setup: Any) -> None:
    store, kubelet, out = setup
    script = (
        "import os; open(os.environ['OUT'] + '/done', 'w').write('x');"
        "open('/dev/termination-log', 'w').write('{\"ok\": \"' + os.environ['OUT'] + '\"}')"
    )
    await store.create(job("j", script))
    try:
        await until(kubelet, done(store, "j"))
    finally:
        kubelet.stop_all()
    [pod] = await pods_of(store, "j")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["message"] == '{"ok": "/mnt/out"}'
    assert (out / "done").read_text() == "x"
    assert (await job_status(store, "j"))["succeeded"] == 1


async def test_container_output_goes_to_its_log_and_to_the_line_callback(setup: Any) -> None:
    store, kubelet, _ = setup
    seen: list[str] = []
    kubelet.on_line = lambda pod, line: seen.append(line)
    await store.create(job("talk", "print('one'); print('two', flush=True); print('three')"))
    try:
        await until(kubelet, done(store, "talk"))
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        kubelet.stop_all()
    assert seen == ["one", "two", "three"]
    [log] = list((kubelet.node.pods_dir).glob("talk-*/log"))
    assert log.read_text() == "one\ntwo\nthree\n"


async def test_failed_pods_are_replaced_until_the_backoff_limit(setup: Any) -> None:
    store, kubelet, _ = setup
    await store.create(job("f", "import sys; print('boom'); sys.exit(3)"))
    try:
        await until(kubelet, done(store, "f", "Failed"))
    finally:
        kubelet.stop_all()
    pods = await pods_of(store, "f")
    assert len(pods) == 2  # backoffLimit 1: the first try and one retry
    for pod in pods:
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 3 and "boom" in terminated["message"]  # log fallback


async def test_indexed_job_runs_every_index(setup: Any) -> None:
    store, kubelet, out = setup
    script = "import os; open(os.environ['OUT'] + '/rank' + os.environ['INDEX'], 'w').write('')"
    await store.create(job("ix", script, completionMode="Indexed", completions=3, parallelism=3))
    try:
        await until(kubelet, done(store, "ix"))
    finally:
        kubelet.stop_all()
    assert sorted(p.name for p in out.iterdir()) == ["rank0", "rank1", "rank2"]


async def test_suspend_stops_the_pod_and_a_queue_admits_queued_jobs(setup: Any) -> None:
    store, kubelet, _ = setup
    script = "import time; time.sleep(60)"
    await store.create(job("s", script))
    queued = job("q", "pass", suspend=True)
    queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "team"
    await store.create(queued)
    try:

        async def running() -> bool:
            return bool(kubelet.processes) and len(await pods_of(store, "s")) == 1

        await until(kubelet, running)
        [pod] = await pods_of(store, "s")
        pid = kubelet.processes[f"ml/{pod['metadata']['name']}"].popen.pid
        await store.patch(
            "batch/v1",
            "Job",
            "ml",
            "s",
            {"metadata": {"annotations": {"rft.dev/held": "true"}}, "spec": {"suspend": True}},
        )

        async def stopped() -> bool:
            return not await pods_of(store, "s")

        await until(kubelet, stopped)
        assert process_start_time(pid) is None  # the process is gone, not just the object
        await until(kubelet, done(store, "q"))  # the stand-in queue admitted it
        assert (await store.get("batch/v1", "Job", "ml", "s"))["spec"]["suspend"] is True
    finally:
        kubelet.stop_all()


async def test_deployment_becomes_ready_and_deleting_the_owner_collects_everything(
    setup: Any,
) -> None:
    store, kubelet, _ = setup
    run = {
        "apiVersion": "rft.dev/v1alpha1",
        "kind": "RFTRun",
        "metadata": {"name": "r", "namespace": "ml"},
        "spec": {},
    }
    await store.create(run)
    uid = (await store.get("rft.dev/v1alpha1", "RFTRun", "ml", "r"))["metadata"]["uid"]
    owner = [
        {
            "apiVersion": "rft.dev/v1alpha1",
            "kind": "RFTRun",
            "name": "r",
            "uid": uid,
            "controller": True,
        }
    ]
    server = (
        "import http.server as h, os;"
        "h.HTTPServer((os.environ['HOST'], 8000), h.SimpleHTTPRequestHandler).serve_forever()"
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ml", "ownerReferences": owner},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "main",
                            "command": [PY, "-c", server],
                            "env": [{"name": "HOST", "value": "0.0.0.0"}],
                            "ports": [{"name": "http", "containerPort": 8000}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        }
                    ],
                },
            },
        },
    }
    await store.create(deployment)
    await store.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "ml", "ownerReferences": owner},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 8000}]},
        }
    )
    try:

        async def ready() -> bool:
            d = await store.get("apps/v1", "Deployment", "ml", "web")
            return bool((d.get("status") or {}).get("readyReplicas"))

        await until(kubelet, ready)
        [pod] = await store.list_all("v1", "Pod")
        pid = kubelet.processes[f"ml/{pod['metadata']['name']}"].popen.pid
        await store.delete("rft.dev/v1alpha1", "RFTRun", "ml", "r")

        async def collected() -> bool:
            left = [
                await store.list_all(v, k)
                for v, k in (("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "Pod"))
            ]
            return not any(left)

        await until(kubelet, collected)
        assert process_start_time(pid) is None
    finally:
        kubelet.stop_all()


async def test_a_new_kubelet_stops_what_a_killed_one_left_running(
    setup: Any, tmp_path: Path
) -> None:
    store, kubelet, _ = setup
    await store.create(job("long", "import time; time.sleep(120)"))

    async def started() -> bool:
        return bool(kubelet.processes)

    await until(kubelet, started)
    [process] = kubelet.processes.values()
    pid = process.popen.pid
    # the kubelet "dies": its object is dropped, its child keeps running
    kubelet.processes.clear()
    assert process_start_time(pid) is not None
    successor = ProcessKubelet(
        store, kubelet.node, tmp_path / "state", restart_delay=0.1, python_bin=kubelet.python_bin
    )
    assert successor.stop_leftovers() == [process.pod]
    process.popen.wait(timeout=10)  # reap our zombie: it was stopped
    assert process_start_time(pid) is None
    await successor.forget_lost_pods()
    await successor.tick()  # the Job gets a new pod, and only one process runs it
    try:
        assert len(successor.processes) == 1
        assert len(await pods_of(store, "long")) == 1
    finally:
        successor.stop_all()
