"""Plays the kubelet and controllers for the operator tests, through the emulator's HTTP API
(so every change reaches the operator as a watch event, as on a cluster): Deployments
become ready, Jobs finish with a termination message on their pod, or fail."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from rft_operator.conditions import now

# job name -> ("succeed", summary) | ("fail", message) | None (keep running)
Outcome = tuple[str, Any] | None


@dataclass
class Kubelet:
    server: str
    outcome: Callable[[str, dict[str, Any]], Outcome]
    paused: bool = False
    hold: set[str] = field(default_factory=set)  # children left pending/running for now
    interval: float = 0.05
    seen: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Kubelet:
        self.session = aiohttp.ClientSession(base_url=self.server)
        self.task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.session.close()

    async def _loop(self) -> None:
        while True:
            if not self.paused:
                await self.tick()
            await asyncio.sleep(self.interval)

    async def get(self, path: str) -> list[dict[str, Any]]:
        async with self.session.get(path) as response:
            if response.status >= 400:
                return []
            items: list[dict[str, Any]] = (await response.json()).get("items", [])
            return items

    async def patch(self, path: str, body: dict[str, Any]) -> None:
        async with self.session.patch(
            path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        ) as response:
            response.raise_for_status()

    async def tick(self) -> None:
        for deployment in await self.get("/apis/apps/v1/deployments"):
            meta = deployment["metadata"]
            if meta["name"] in self.hold:
                continue
            if not (deployment.get("status") or {}).get("readyReplicas"):
                replicas = deployment["spec"].get("replicas", 1)
                await self.patch(
                    f"/apis/apps/v1/namespaces/{meta['namespace']}/deployments/{meta['name']}"
                    "/status",
                    {"status": {"readyReplicas": replicas, "replicas": replicas}},
                )
        for job in await self.get("/apis/batch/v1/jobs"):
            meta, status = job["metadata"], job.get("status") or {}
            if job["spec"].get("suspend") or status.get("conditions"):
                continue
            decision = None if meta["name"] in self.hold else self.outcome(meta["name"], job)
            if decision is None:
                if not status.get("active"):
                    await self.patch(self._job_path(meta) + "/status", {"status": {"active": 1}})
                continue
            await self.finish(job, *decision)

    @staticmethod
    def _job_path(meta: dict[str, Any]) -> str:
        return f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}"

    async def finish(self, job: dict[str, Any], verdict: str, payload: Any) -> None:
        meta = job["metadata"]
        ok = verdict == "succeed"
        message = json.dumps(payload) if not isinstance(payload, str) else payload
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-0-abcde",
                "namespace": meta["namespace"],
                "labels": {**meta["labels"], "batch.kubernetes.io/job-name": meta["name"]},
                "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": job["spec"]["template"]["spec"],
            "status": {
                "phase": "Succeeded" if ok else "Failed",
                "containerStatuses": [
                    {
                        "name": "main",
                        "state": {"terminated": {"exitCode": 0 if ok else 1, "message": message}},
                    }
                ],
            },
        }
        async with self.session.post(
            f"/api/v1/namespaces/{meta['namespace']}/pods", json=pod
        ) as response:
            if response.status not in (200, 201, 409):
                response.raise_for_status()
        condition = {
            "type": "Complete" if ok else "Failed",
            "status": "True",
            "reason": "Completed" if ok else "BackoffLimitExceeded",
            "lastTransitionTime": now(),
            "message": "" if ok else "Job has reached the specified backoff limit",
        }
        await self.patch(
            self._job_path(meta) + "/status",
            {
                "status": {
                    "conditions": [condition],
                    "active": 0,
                    "succeeded" if ok else "failed": 1,
                }
            },
        )
        self.seen.add(meta["name"])
