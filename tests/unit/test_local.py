"""Local-mode pieces that need no model: URI mapping, the status table, the example data."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from rft_operator.api import BaselineStatus, BestStatus, IterationStatus, RFTRunSpec, RFTRunStatus
from rft_operator.local import local_claims
from rft_operator.table import status_table

from ..conftest import ROOT


def test_local_claims_bind_storage_models_and_folders_next_to_the_manifest(
    tmp_path: Path,
) -> None:
    spec = RFTRunSpec.model_validate(
        {
            "model": {"uri": "pvc://models/m"},
            "data": {"train": "pvc://data/arith/train.jsonl"},
            "evaluation": {"sets": [{"name": "x", "uri": "pvc://extra/x.jsonl"}]},
        }
    )
    claims = local_claims(spec, tmp_path / "run", ROOT / "examples", {"extra": "/srv/extra"})
    assert claims["data"] == str(ROOT / "examples" / "data")
    assert claims["extra"] == "/srv/extra"
    assert claims["models"].endswith("/models")
    assert claims[spec.storage.pvc] == str(tmp_path / "run" / "storage")


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
    assert counts == {
        "train": 300,
        "train-600": 600,
        "train-3000": 3000,
        "eval": 200,
        "guard": 200,
    }
    prompts: dict[str, set[str]] = {}
    for name in counts:
        made = (tmp_path / f"{name}.jsonl").read_text()
        assert made == (ROOT / "examples" / "data" / "arith" / f"{name}.jsonl").read_text()
        rows = [json.loads(line) for line in made.splitlines()]
        prompts[name] = {r["prompt"] for r in rows}
        for row in rows:
            a, op, b = row["prompt"].removeprefix("What is ").removesuffix("?").split()
            assert int(row["answer"]) == (int(a) + int(b) if op == "+" else int(a) * int(b))
    assert not prompts["train-3000"] & prompts["eval"]
    assert prompts["train"] < prompts["train-600"] < prompts["train-3000"]
    assert (len(prompts["train-600"]), len(prompts["train-3000"])) == (600, 3000)
    # train-3000 extends train-600 (the example before session 10), line for line
    first = (tmp_path / "train-3000.jsonl").read_text().splitlines(keepends=True)[:600]
    assert "".join(first) == (tmp_path / "train-600.jsonl").read_text()
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
