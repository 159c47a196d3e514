"""The controllers and the kubelet of the process kubelet, in one reconcile loop (`tick`).

Each tick: note which processes ended and which pods are ready, collect garbage (objects
whose owner is gone), then for every Deployment and Job make the pods it should have,
start a process for every new pod, and write the status a cluster would write. Pods are
objects in the same store as everything else, so the operator reads their termination
messages exactly as on a cluster. Each running process is recorded in a pid file, so a
new kubelet (a rerun after the old one was killed) stops what the old one left running
before it starts anything: never two processes doing one pod's work.

Over 400 lines on purpose: the controllers (Deployment, Job, garbage collection, queue
admission) and the kubelet share one tick's snapshot and one process table, and the
status they write is spelled out as Kubernetes spells it. Pure object helpers live in
`objects.py`, process handling in `processes.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets as random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rft_runtime.config.termination import TERMINATION_LIMIT
from rft_runtime.files import atomic_write_json

from ..client import Client, NotFound
from ..conditions import now
from ..manifests import HELD_ANNOTATION, KUEUE_QUEUE_LABEL
from .container import ContainerConfigError, Node, container_launch
from .objects import (
    INDEX_KEY,
    dns,
    has_condition,
    key_of,
    meta_of,
    owner_uid,
    pod_from_template,
    resolved_probe,
)
from .processes import Process, follow, log_tail, probe, process_start_time, stop_group

log = logging.getLogger("rft.kubelet")
ADMITTED_ANNOTATION = "rft.dev/admitted-locally"  # the stand-in queue admitted this Job
CRASH_LOOP_RESTARTS = 3  # a Deployment whose pod crashed this often stops progressing
OWNER_KINDS = [
    ("rft.dev/v1alpha1", "RFTRun"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
]
OWNED_KINDS = [("v1", "Pod"), ("v1", "Service"), ("apps/v1", "Deployment"), ("batch/v1", "Job")]
Line = Callable[[dict[str, Any], str], None]


@dataclass
class ProcessKubelet:
    client: Client
    node: Node
    state_dir: Path  # pid records of the running processes
    on_line: Line | None = None  # every output line of every container
    restart_delay: float = 2.0
    probe_period: float = 2.0
    processes: dict[str, Process] = field(default_factory=dict)
    crashes: dict[str, tuple[int, float, str]] = field(default_factory=dict)
    python_bin: str = ""

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.node.pods_dir.mkdir(parents=True, exist_ok=True)

    # -- start-up: what an earlier kubelet left ------------------------------------------

    def stop_leftovers(self) -> list[str]:
        """Stop every process a previous kubelet recorded and that still runs (its pods
        are deleted by `forget_lost_pods`, and their controllers make new ones)."""
        stopped = []
        for record in sorted(self.state_dir.glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(record.read_text())
                pid = int(info["pid"])
                if process_start_time(pid) == info.get("startTime"):
                    stop_group(pid, grace=10.0)
                    stopped.append(str(info.get("pod")))
            record.unlink(missing_ok=True)
        return stopped

    async def forget_lost_pods(self) -> None:
        """Pods that were running under a kubelet that is gone: delete them."""
        for pod in await self.client.list_all("v1", "Pod"):
            phase = (pod.get("status") or {}).get("phase")
            if key_of(pod) not in self.processes and phase in (None, "Pending", "Running"):
                meta = meta_of(pod)
                await self.client.delete("v1", "Pod", meta["namespace"], meta["name"])

    # -- the loop ------------------------------------------------------------------------

    async def tick(self) -> None:
        await self._observe_processes()
        await self._assign_uids()
        pods = await self.client.list_all("v1", "Pod")
        owned = {kind: await self.client.list_all(*kind) for kind in OWNED_KINDS[1:]}
        runs = await self.client.list_all(*OWNER_KINDS[0])
        await self._collect_garbage(pods, owned, runs)
        pods = await self.client.list_all("v1", "Pod")
        services = await self.client.list_all("v1", "Service")
        for deployment in await self.client.list_all("apps/v1", "Deployment"):
            if meta_of(deployment).get("uid"):
                await self._sync_deployment(deployment, pods)
        for job in await self.client.list_all("batch/v1", "Job"):
            if meta_of(job).get("uid"):
                await self._sync_job(job, pods)
        pods = await self.client.list_all("v1", "Pod")
        for pod in pods:
            if (pod.get("status") or {}).get("phase") == "Pending" and key_of(
                pod
            ) not in self.processes:
                await self._run_pod(pod, pods, services)

    async def run_forever(self, interval: float = 0.5) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a passing API error must not stop the node
                log.exception("process kubelet tick failed")
            await asyncio.sleep(interval)

    def stop_all(self, grace: float = 10.0) -> None:
        for process in list(self.processes.values()):
            stop_group(process.popen.pid, grace)
            process.popen.wait()
        self.processes.clear()
        for record in self.state_dir.glob("*.json"):
            record.unlink(missing_ok=True)

    # -- processes -----------------------------------------------------------------------

    async def _observe_processes(self) -> None:
        for key, process in list(self.processes.items()):
            code = process.popen.poll()
            if code is None:
                if not process.ready and time.monotonic() >= process.next_probe:
                    process.next_probe = time.monotonic() + self.probe_period
                    process.ready = await asyncio.to_thread(probe, process)
                    if process.ready:
                        self._timeline(process, ready=time.time())
                        await self._patch_pod(key, self._running_status(process))
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.popen.pid, signal.SIGKILL)  # what the main process left
            del self.processes[key]
            self._forget_record(key)
            exit_code = 128 - code if code < 0 else code
            self._timeline(process, finished=time.time(), exitCode=exit_code)
            await self._terminated(key, process, exit_code)

    def _running_status(self, process: Process) -> dict[str, Any]:
        restarts = self.crashes.get(process.pod, (0, 0.0, ""))[0]
        return {
            "phase": "Running",
            "podIP": process.ip,
            "conditions": [{"type": "Ready", "status": "True" if process.ready else "False"}],
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": process.ready,
                    "restartCount": restarts,
                    "state": {"running": {"startedAt": process.started_at}},
                }
            ],
        }

    def _timeline(self, process: Process, **fields: Any) -> None:
        """When this container started, became ready and ended (`pods/<pod>/timeline.json`,
        which outlives the pod object: benchmarks read it)."""
        path = process.log.parent / "timeline.json"
        with contextlib.suppress(OSError, ValueError):
            current = json.loads(path.read_text()) if path.exists() else {}
            atomic_write_json(path, {**current, **fields})

    async def _terminated(self, key: str, process: Process, code: int) -> None:
        try:
            pod = await self._get_pod(key)
        except NotFound:
            return  # deleted while it ran
        message = (
            process.termination.read_bytes()[:TERMINATION_LIMIT].decode("utf-8", errors="replace")
            if process.termination.exists()
            else ""
        )
        if not message.strip() and code != 0:
            message = log_tail(process.log)
        message = process.in_container(message)
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "message": message,
            "startedAt": process.started_at,
            "finishedAt": now(),
        }
        restart_always = (pod.get("spec") or {}).get("restartPolicy", "Always") == "Always"
        if restart_always and not process.stopping:
            count = self.crashes.get(key, (0, 0.0, ""))[0] + 1
            self.crashes[key] = (count, time.monotonic() + self.restart_delay, message)
            await self._patch_pod(
                key,
                {
                    "phase": "Pending",
                    "containerStatuses": [
                        {
                            "name": "main",
                            "ready": False,
                            "restartCount": count,
                            "lastState": {"terminated": terminated},
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        }
                    ],
                },
            )
            return
        await self._patch_pod(
            key,
            {
                "phase": "Succeeded" if code == 0 else "Failed",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "main", "ready": False, "state": {"terminated": terminated}}
                ],
            },
        )

    async def _run_pod(
        self, pod: dict[str, Any], pods: list[dict[str, Any]], services: list[dict[str, Any]]
    ) -> None:
        key = key_of(pod)
        _, due, _ = self.crashes.get(key, (0, 0.0, ""))
        if time.monotonic() < due:
            return
        try:
            launch = container_launch(pod, self.node, dns(services, pods), self.python_bin)
        except ContainerConfigError as error:
            await self._patch_pod(
                key,
                {
                    "phase": "Failed",
                    "containerStatuses": [
                        {
                            "name": "main",
                            "state": {
                                "terminated": {
                                    "exitCode": 128,
                                    "reason": "CreateContainerConfigError",
                                    "message": str(error),
                                    "finishedAt": now(),
                                }
                            },
                        }
                    ],
                },
            )
            return
        # The container writes its log file itself (as a runtime's shim would), so it keeps
        # running, and writing, if this kubelet dies; the console follows the file.
        with launch.log.open("ab") as handle:
            offset = handle.tell()
            popen = subprocess.Popen(
                launch.argv,
                env=launch.env,
                cwd=launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atomic_write_json(
            self._record(key),
            {"pod": key, "pid": popen.pid, "startTime": process_start_time(popen.pid)},
        )
        container = pod["spec"]["containers"][0]
        process = Process(
            pod=key,
            popen=popen,
            log=launch.log,
            termination=launch.termination,
            started_at=now(),
            probe=resolved_probe(container),
            ip=pod["status"]["podIP"],
            in_container=launch.in_container,
        )
        process.ready = process.probe is None
        self.processes[key] = process
        owner = (pod["metadata"].get("ownerReferences") or [{}])[0]
        self._timeline(
            process,
            owner=owner.get("name"),
            ownerKind=owner.get("kind"),
            started=time.time(),
            **({"ready": time.time()} if process.ready else {}),
        )
        if self.on_line is not None:
            threading.Thread(
                target=follow,
                args=(launch.log, offset, popen, functools.partial(self.on_line, pod)),
                daemon=True,
            ).start()
        await self._patch_pod(key, self._running_status(process))

    def _record(self, key: str) -> Path:
        return self.state_dir / f"{key.replace('/', '_')}.json"

    def _forget_record(self, key: str) -> None:
        self._record(key).unlink(missing_ok=True)

    async def _kill_pod(self, pod: dict[str, Any]) -> None:
        """Delete the pod; its process gets SIGTERM, then SIGKILL after the grace period."""
        key = key_of(pod)
        process = self.processes.pop(key, None)
        if process is not None:
            process.stopping = True
            grace = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            await asyncio.to_thread(stop_group, process.popen.pid, grace)
            await asyncio.to_thread(process.popen.wait)
            self._forget_record(key)
        meta = meta_of(pod)
        await self.client.delete("v1", "Pod", meta["namespace"], meta["name"])

    # -- controllers ---------------------------------------------------------------------

    async def _assign_uids(self) -> None:
        """Owners need a uid for their pods to point at; an API server assigns one on
        create, an emulator may not, so the node fills in what is missing."""
        for api_version, kind in OWNER_KINDS:
            for obj in await self.client.list_all(api_version, kind):
                meta = meta_of(obj)
                if not meta.get("uid"):
                    with contextlib.suppress(NotFound):
                        await self.client.patch(
                            api_version,
                            kind,
                            meta["namespace"],
                            meta["name"],
                            {"metadata": {"uid": str(uuid.uuid4())}},
                        )

    async def _collect_garbage(
        self,
        pods: list[dict[str, Any]],
        owned: dict[tuple[str, str], list[dict[str, Any]]],
        runs: list[dict[str, Any]],
    ) -> None:
        """Delete what lost its owner (listed before the owners, so nothing new is lost)."""
        uids = {str(meta_of(o).get("uid")) for o in runs}
        for objects in owned.values():
            uids |= {str(meta_of(o).get("uid")) for o in objects}
        for pod in pods:
            owner = owner_uid(pod)
            if owner and owner not in uids:
                await self._kill_pod(pod)
        for (api_version, kind), objects in owned.items():
            for obj in objects:
                owner = owner_uid(obj)
                if owner and owner not in uids:
                    meta = meta_of(obj)
                    await self.client.delete(api_version, kind, meta["namespace"], meta["name"])

    def _own(self, owner: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        uid = meta_of(owner).get("uid")
        return [p for p in pods if uid and owner_uid(p) == str(uid)]

    async def _sync_deployment(
        self, deployment: dict[str, Any], pods: list[dict[str, Any]]
    ) -> None:
        mine = self._own(deployment, pods)
        alive = [p for p in mine if (p.get("status") or {}).get("phase") in ("Pending", "Running")]
        want = int((deployment.get("spec") or {}).get("replicas", 1))
        for pod in alive[want:]:
            await self._kill_pod(pod)
        alive = alive[:want]
        for _ in range(want - len(alive)):
            alive.append(await self._create_pod(deployment, None))
        ready = sum(1 for p in alive if self._ready(p))
        status: dict[str, Any] = {
            "observedGeneration": meta_of(deployment).get("generation"),
            "replicas": len(alive),
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        crashed = [self.crashes[key_of(p)] for p in alive if key_of(p) in self.crashes]
        worst = max(crashed, default=None)
        if worst is not None and worst[0] >= CRASH_LOOP_RESTARTS:
            status["conditions"] = [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f"the pod crashed {worst[0]} times; last: {worst[2][-800:]}",
                }
            ]
        current = deployment.get("status") or {}
        if any(current.get(k) != v for k, v in status.items()):
            meta = meta_of(deployment)
            await self.client.patch(
                "apps/v1",
                "Deployment",
                meta["namespace"],
                meta["name"],
                {"status": status},
                "status",
            )

    def _ready(self, pod: dict[str, Any]) -> bool:
        process = self.processes.get(key_of(pod))
        return process is not None and process.ready

    async def _sync_job(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        meta, spec = meta_of(job), job.get("spec") or {}
        if has_condition(job, "Complete") or has_condition(job, "Failed"):
            return
        mine = self._own(job, pods)
        active = [p for p in mine if (p.get("status") or {}).get("phase") in ("Pending", "Running")]
        if spec.get("suspend"):
            labels = meta.get("labels") or {}
            annotations = meta.get("annotations") or {}
            if labels.get(KUEUE_QUEUE_LABEL) and annotations.get(HELD_ANNOTATION) != "true":
                await self._admit(job)  # the stand-in for a queue: admit at once
                return
            for pod in active:
                await self._kill_pod(pod)
            if (job.get("status") or {}).get("active"):
                await self._job_status(job, {"active": 0})
            return
        indexed = spec.get("completionMode") == "Indexed"
        completions = int(spec.get("completions") or 1)
        succeeded = {
            self._index(p) for p in mine if (p.get("status") or {}).get("phase") == "Succeeded"
        }
        failed = sum(1 for p in mine if (p.get("status") or {}).get("phase") == "Failed")
        status: dict[str, Any] = {
            "startTime": (job.get("status") or {}).get("startTime") or now(),
            "active": len(active),
            "succeeded": len(succeeded),
            "failed": failed,
        }
        if failed > int(spec.get("backoffLimit", 6)):
            for pod in active:
                await self._kill_pod(pod)
            status["active"] = 0
            status["conditions"] = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": now(),
                }
            ]
        elif len(succeeded) >= completions:
            status["completionTime"] = now()
            status["conditions"] = [
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "Completed",
                    "lastTransitionTime": now(),
                }
            ]
        else:
            running = {self._index(p) for p in active}
            for index in range(completions):
                if index not in succeeded and index not in running:
                    await self._create_pod(job, index if indexed else None)
                    status["active"] += 1
        await self._job_status(job, status)

    async def _admit(self, job: dict[str, Any]) -> None:
        meta = meta_of(job)
        await self.client.patch(
            "batch/v1",
            "Job",
            meta["namespace"],
            meta["name"],
            {"metadata": {"annotations": {ADMITTED_ANNOTATION: now()}}, "spec": {"suspend": False}},
        )

    async def _job_status(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        current = job.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        meta = meta_of(job)
        await self.client.patch(
            "batch/v1", "Job", meta["namespace"], meta["name"], {"status": status}, "status"
        )

    @staticmethod
    def _index(pod: dict[str, Any]) -> int:
        return int((meta_of(pod).get("annotations") or {}).get(INDEX_KEY, "0"))

    async def _create_pod(self, owner: dict[str, Any], index: int | None) -> dict[str, Any]:
        pod = pod_from_template(owner, index, random.token_hex(3)[:5], self._free_ip(), now())
        await self.client.create(pod)
        return pod

    def _free_ip(self) -> str:
        used = {p.ip for p in self.processes.values()}
        while True:
            n = int.from_bytes(random.token_bytes(3), "big")
            ip = f"127.{100 + (n >> 16) % 100}.{(n >> 8) & 255}.{max(n & 255, 1)}"
            if ip not in used:
                return ip

    async def _get_pod(self, key: str) -> dict[str, Any]:
        namespace, name = key.split("/", 1)
        return await self.client.get("v1", "Pod", namespace, name)

    async def _patch_pod(self, key: str, status: dict[str, Any]) -> None:
        namespace, name = key.split("/", 1)
        with contextlib.suppress(NotFound):
            await self.client.patch("v1", "Pod", namespace, name, {"status": status}, "status")
