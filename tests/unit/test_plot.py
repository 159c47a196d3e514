"""`rft report`: the plotted series come from the status, and a PNG is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rft_operator.api import BaselineStatus, IterationStatus, RFTRunStatus
from rft_operator.plot import iteration_series, series

from ..conftest import ROOT

STATUS = RFTRunStatus(
    stage="Succeeded",
    baseline=BaselineStatus(eval_score=0.08, eval_scores={"add/pass@1": 0.08}),
    iterations=[
        IterationStatus(index=0, eval_scores={"add/pass@1": 0.5}, mean_reward=0.03),
        IterationStatus(index=1, eval_scores={"add/pass@1": 0.615}, mean_reward=0.2),
    ],
)


def test_series_follow_the_status() -> None:
    labels, metrics, rewards = series(STATUS)
    assert labels == ["base", "after 0", "after 1"]
    assert metrics == {"add/pass@1": [0.08, 0.5, 0.615]}
    assert rewards == [0.03, 0.2, None]


def test_iteration_series_carry_pass_rate_kept_and_stage_seconds_in_run_order() -> None:
    status = STATUS.model_copy(deep=True)
    first, second = status.iterations or []
    first.train_pass_rate, first.accepted = 0.02, 51
    first.durations = {"training": 40.0, "sampling": 300.0, "baselineEvaluation": 50.0}
    second.durations = {"sampling": 250.0, "training": 200.0, "evaluation": 30.0}
    its = iteration_series(status)
    assert its.labels == ["it 0", "it 1"]
    assert its.pass_rate == [0.02, None] and its.kept == [51, None]
    assert its.mean_reward == [0.03, 0.2]
    # stacked in the order a run spends them; a stage an iteration lacks counts 0 s
    assert its.seconds == {
        "baselineEvaluation": [50.0, 0.0],
        "sampling": [300.0, 250.0],
        "training": [40.0, 200.0],
        "evaluation": [0.0, 30.0],
    }


def test_report_writes_a_png(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text(json.dumps(STATUS.to_wire()))
    out = tmp_path / "report.png"
    result = subprocess.run(
        [sys.executable, "-m", "rft_operator.cli", "report", str(tmp_path), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_report_of_a_non_run_directory_fails_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rft_operator.cli", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode != 0 and "is" in result.stderr and "run directory" in result.stderr
    assert "Traceback" not in result.stderr
