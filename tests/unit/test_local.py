"""Local-mode pieces that need no model: URI mapping, the status table, the example data."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rft_operator.api import BaselineStatus, BestStatus, IterationStatus, RFTRunStatus
from rft_operator.local import local_layout
from rft_operator.table import status_table

from ..conftest import ROOT


def test_local_layout_maps_claims(tmp_path: Path) -> None:
    layout = local_layout(tmp_path / "run", ROOT / "examples", {"extra": "/srv/extra"})
    assert layout.resolve("pvc://data/arith/train.jsonl") == str(
        ROOT / "examples" / "data" / "arith" / "train.jsonl"
    )
    assert layout.resolve("pvc://extra/x.jsonl") == "/srv/extra/x.jsonl"
    assert layout.resolve("pvc://models/m").endswith("/models/m")
    assert layout.uri_of(f"{tmp_path}/run/it-0/checkpoint") == (
        f"file://{tmp_path}/run/it-0/checkpoint"
    )


def test_status_table_lists_base_and_iterations() -> None:
    status = RFTRunStatus(
        stage="Succeeded",
        message="finished 1 iterations",
        baseline=BaselineStatus(eval_score=0.08, eval_scores={"add/pass@1": 0.08}),
        iterations=[
            IterationStatus(
                index=0,
                eval_score=0.5,
                eval_scores={"add/pass@1": 0.5},
                train_pass_rate=0.2,
                accepted=60,
                mean_reward=0.2,
                durations={"sampling": 80.0, "training": 120.0},
            )
        ],
        best=BestStatus(iteration=0, eval_score=0.5, checkpoint="file:///r/it-0/checkpoint"),
    )
    table = status_table(status)
    lines = table.splitlines()
    assert lines[0].split() == [
        "iteration",
        "add/pass@1",
        "pass",
        "rate",
        "kept",
        "mean",
        "reward",
        "sampling",
        "s",
        "training",
        "s",
    ]
    assert lines[2].split() == ["base", "0.080"]
    assert lines[3].split() == ["0", "0.500", "0.200", "60", "0.200", "80", "120"]
    assert "best: iteration 0 (0.500) at file:///r/it-0/checkpoint" in table


def test_example_data_is_what_the_generator_makes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make", ROOT / "examples" / "make_arith_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts = module.make(tmp_path)
    assert counts == {"train": 300, "eval": 200, "guard": 200}
    prompts: dict[str, set[str]] = {}
    for name in counts:
        made = (tmp_path / f"{name}.jsonl").read_text()
        assert made == (ROOT / "examples" / "data" / "arith" / f"{name}.jsonl").read_text()
        rows = [json.loads(line) for line in made.splitlines()]
        prompts[name] = {r["prompt"] for r in rows}
        for row in rows:
            a, op, b = row["prompt"].removeprefix("What is ").removesuffix("?").split()
            assert int(row["answer"]) == (int(a) + int(b) if op == "+" else int(a) * int(b))
    assert not prompts["train"] & prompts["eval"]
    assert len(prompts["guard"]) == 200


def test_operator_entry_point_has_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rft_operator", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0
    assert "--all-namespaces" in result.stdout and "--metrics-port" in result.stdout


def test_release_build_locks_removes_only_locks_of_the_killed_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import time

    from rft_operator.local import release_build_locks

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    old, new = tmp_path / "op_a" / "lock", tmp_path / "op_b" / "lock"
    for lock in (old, new):
        lock.parent.mkdir()
        lock.write_text("")
    started = time.time()
    os.utime(old, (started - 600, started - 600))  # another run's lock, older
    release_build_locks(started)
    assert old.exists() and not new.exists()
