"""The real kopf operator against kmock (an in-process Kubernetes API emulator)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf.testing import KopfRunner

from ..support.emulator import declare_resources

os.environ.setdefault("RFT_TIMER_INTERVAL", "1")


@pytest.fixture
async def cluster(kmock: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    declare_resources(kmock)
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
