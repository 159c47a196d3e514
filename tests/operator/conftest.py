"""The real kopf operator against kmock (an in-process Kubernetes API emulator)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf.testing import KopfRunner

os.environ.setdefault("RFT_TIMER_INTERVAL", "1")

RESOURCES = {
    "rft.dev/v1alpha1/rftruns": ("RFTRun", True, ["status"]),
    "apps/v1/deployments": ("Deployment", True, ["status"]),
    "batch/v1/jobs": ("Job", True, ["status"]),
    "v1/services": ("Service", True, []),
    "v1/pods": ("Pod", True, ["status"]),
    "v1/events": ("Event", True, []),
    "v1/namespaces": ("Namespace", False, []),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False, []),
}
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


@pytest.fixture
async def cluster(kmock: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, (kind, namespaced, subresources) in RESOURCES.items():
        kmock.resources[key] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
        )
    kmock.objects["v1/namespaces", None, "ml"] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ml"},
    }
    monkeypatch.setenv("RFT_KUBE_SERVER", str(kmock.url).rstrip("/"))
    return kmock


@contextlib.asynccontextmanager
async def operator_running() -> AsyncIterator[KopfRunner]:
    """Start the real operator (kopf run) in a worker thread; stop it on exit."""
    runner = KopfRunner(["run", "-A", "--standalone", "-m", "rft_operator.handlers"], timeout=180)
    await asyncio.to_thread(runner.__enter__)
    try:
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
