"""The local object store plays the API server's part for `rft run --local`: uids and
generations, merge patches (status apart), persistence across runs; and a rerun of a
failed run asks it to retry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rft_operator.client import NotFound
from rft_operator.local import LocalExecutor
from rft_operator.local_store import LocalStore
from rft_operator.reconcile import RETRY_ANNOTATION

from ..conftest import ROOT

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "j", "namespace": "ml", "labels": {"a": "1"}},
    "spec": {"suspend": False},
}


async def test_store_assigns_identity_patches_and_persists(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects.json")
    assert await store.create(JOB) is True
    assert await store.create(JOB) is False  # already exists, as a 409 would say
    first = await store.get("batch/v1", "Job", "ml", "j")
    assert first["metadata"]["uid"] and first["metadata"]["generation"] == 1
    await store.patch("batch/v1", "Job", "ml", "j", {"status": {"active": 1}}, "status")
    after_status = await store.get("batch/v1", "Job", "ml", "j")
    assert after_status["status"] == {"active": 1}
    assert after_status["metadata"]["generation"] == 1  # status is not the spec
    await store.patch(
        "batch/v1",
        "Job",
        "ml",
        "j",
        {"metadata": {"labels": {"a": None, "b": "2"}}, "spec": {"suspend": True}, "status": {}},
    )
    patched = await store.get("batch/v1", "Job", "ml", "j")
    assert patched["metadata"]["labels"] == {"b": "2"}  # null removes (RFC 7386)
    assert patched["spec"]["suspend"] is True and patched["metadata"]["generation"] == 2
    assert patched["status"] == {"active": 1}  # the main resource does not write status
    reopened = LocalStore(tmp_path / "objects.json")
    assert await reopened.get("batch/v1", "Job", "ml", "j") == patched
    assert await reopened.delete("batch/v1", "Job", "ml", "j") is True
    with pytest.raises(NotFound):
        await reopened.get("batch/v1", "Job", "ml", "j")


def test_rerunning_a_failed_run_asks_for_a_retry(tmp_path: Path) -> None:
    executor = LocalExecutor(ROOT / "examples" / "arith-smollm2.yaml", tmp_path / "run")
    store, name = executor.store, executor.name

    async def go() -> dict[str, object]:
        first = await executor._submit()
        assert RETRY_ANNOTATION not in (first["metadata"].get("annotations") or {})
        status = {"stage": "Failed", "conditions": []}
        await store.patch(
            "rft.dev/v1alpha1", "RFTRun", "default", name, {"status": status}, "status"
        )
        return await executor._submit()

    again = asyncio.run(go())
    assert RETRY_ANNOTATION in again["metadata"]["annotations"]  # type: ignore[index]
