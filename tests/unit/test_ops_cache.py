"""Built DeepSpeed ops travel between a pod's own extensions folder and the cache on the
run storage as whole folders; a folder still being built (its lock) never travels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rft_runtime.config.env import OPS_CACHE_ENV
from rft_runtime.train import ops_cache


def make_op(root: Path, name: str, locked: bool = False) -> None:
    op = root / name
    op.mkdir(parents=True)
    (op / f"{op.name}.so").write_bytes(b"\x7fELF")
    (op / "build.ninja").write_text("rule")
    if locked:
        (op / "lock").write_text("")


def test_finished_builds_are_saved_and_restored_without_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, first, second = tmp_path / "cache", tmp_path / "pod1", tmp_path / "pod2"
    make_op(first, "fused_adam")
    make_op(first, "py311_cpu/deepspeed_shm_comm")
    make_op(first, "half_built", locked=True)
    monkeypatch.setenv(OPS_CACHE_ENV, str(cache))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(first))
    ops_cache.save()
    assert (cache / "fused_adam" / "fused_adam.so").exists()
    assert (cache / "py311_cpu" / "deepspeed_shm_comm" / "deepspeed_shm_comm.so").exists()
    assert not (cache / "half_built").exists()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(second))
    ops_cache.restore()
    assert (second / "fused_adam" / "build.ninja").read_text() == "rule"
    assert not list(second.rglob("lock"))
    ops_cache.restore()  # a second restore (another rank) leaves what is there
    assert (second / "fused_adam" / "fused_adam.so").read_bytes() == b"\x7fELF"


def test_a_local_run_seeds_its_cache_from_the_users_and_gives_new_builds_back(
    tmp_path: Path,
) -> None:
    user, run = tmp_path / "user", tmp_path / "run-storage-cache"
    assert ops_cache.copy_builds(user, run) == 0  # no user cache yet: nothing, no error
    make_op(run, "py311_cpu/cpu_adam")
    make_op(run, "py311_cpu/half_built", locked=True)
    assert ops_cache.copy_builds(run, user) == 1  # after the run: finished builds only
    fresh = tmp_path / "next-run"
    assert ops_cache.copy_builds(user, fresh) == 1
    assert (fresh / "py311_cpu" / "cpu_adam" / "cpu_adam.so").exists()
    assert ops_cache.copy_builds(user, fresh) == 0  # what is there stays


def test_compiled_sampler_kernels_travel_file_by_file_without_locks(tmp_path: Path) -> None:
    """inductor's cache is content-addressed: a fresh run's sampler that finds the kernels
    loads them instead of compiling the model again (92 -> 43 s to start on 2 CPUs)."""
    user, run = tmp_path / "user", tmp_path / "run"
    assert ops_cache.copy_compiled(user, run) == 0  # no user cache yet
    (run / "fxgraph" / "ab").mkdir(parents=True)
    (run / "fxgraph" / "ab" / "entry").write_bytes(b"graph")
    (run / "bb").mkdir()
    (run / "bb" / "kernel.main.so").write_bytes(b"\x7fELF")
    (run / "locks").mkdir()
    (run / "locks" / "bb.lock").write_text("")
    (run / "precompiled_headers").mkdir()
    (run / "precompiled_headers" / "big.gch").write_bytes(b"h")
    (run / "bb" / ".kernel.main.so.x1y2").write_bytes(b"half")  # a copy cut short
    assert ops_cache.copy_compiled(run, user) == 2
    assert (user / "fxgraph" / "ab" / "entry").read_bytes() == b"graph"
    assert not (user / "locks").exists() and not (user / "precompiled_headers").exists()
    (user / "bb" / "kernel.main.so").write_bytes(b"kept")
    assert ops_cache.copy_compiled(run, user) == 0  # what is there stays
    assert (user / "bb" / "kernel.main.so").read_bytes() == b"kept"


def test_vllm_model_info_is_handed_on_and_a_newer_entry_replaces_a_stale_one(
    tmp_path: Path,
) -> None:
    """vLLM names its model-info cache by architecture, not by content: after an upgrade
    the run's fresh entry must replace the user's stale one, or every later run would
    inspect the model in a subprocess again."""
    user, run = tmp_path / "user", tmp_path / "run"
    entry = Path("modelinfos") / "vllm-model_executor-models-llama-LlamaForCausalLM.json"
    (run / entry).parent.mkdir(parents=True)
    (run / entry).write_text('{"hash": "old"}')
    assert ops_cache.copy_compiled(run, user, replace_older=True) == 1
    assert ops_cache.copy_compiled(run, user, replace_older=True) == 0  # same age: stays
    (run / entry).write_text('{"hash": "new"}')
    os.utime(run / entry, (2e9, 2e9))  # written after the user's copy
    assert ops_cache.copy_compiled(run, user) == 0  # content-addressed mode keeps it
    assert ops_cache.copy_compiled(run, user, replace_older=True) == 1
    assert (user / entry).read_text() == '{"hash": "new"}'
    os.utime(user / entry, (3e9, 3e9))  # the user's is newer: it is not replaced
    (run / entry).write_text('{"hash": "older"}')
    os.utime(run / entry, (2e9, 2e9))
    assert ops_cache.copy_compiled(run, user, replace_older=True) == 0
    assert (user / entry).read_text() == '{"hash": "new"}'
