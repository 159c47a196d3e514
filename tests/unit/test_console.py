"""The console of `rft run --local`, driven by a sequence of run states (what the executor
polls: the status, the jobs' live progress files), on a terminal and on a pipe; and a
run whose scoring pod fails at once, through the real CLI and process kubelet."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from rft_operator.api import (
    BaselineStatus,
    BestStatus,
    Condition,
    IterationStatus,
    RFTRunStatus,
)
from rft_operator.console import Console, failed_pod, progress_text, stage_lines
from rft_runtime.config.live import LiveProgress

from ..conftest import ROOT

BASE = {"add/pass@1": 0.08}


def live(phase: str, unit: str, done: int, total: int, k: int, **extra: object) -> LiveProgress:
    return LiveProgress.model_validate(
        {
            "job": "train" if unit == "steps" else "score",
            "run": "r",
            "iteration": k,
            "phase": phase,
            "unit": unit,
            "done": done,
            "total": total,
            "elapsed_seconds": 10.0,
            "tokens": 5000.0,
            "updated": 0.0,
            **extra,
        }
    )


def two_iterations() -> list[tuple[RFTRunStatus, LiveProgress | None]]:
    """A 2-iteration run as the executor sees it, poll by poll (several polls per stage)."""
    states: list[tuple[RFTRunStatus, LiveProgress | None]] = []
    st = RFTRunStatus(stage="Pending", iteration=0)

    def add(live_progress: LiveProgress | None = None, polls: int = 3) -> None:
        for _ in range(polls):
            states.append((st.model_copy(deep=True), live_progress))

    for k in range(2):
        st.stage, st.message = "StartingSampler", f"iteration {k}: starting the sampler"
        add()
        st.stage, st.message = "Sampling", f"iteration {k}: sampling and scoring"
        for done in (0, 8, 16):
            add(live("sample", "prompts", done, 16, k))
        if k == 0:
            st.baseline = BaselineStatus(eval_score=0.08, eval_scores=BASE)
        else:
            item = st.iterations[0]  # type: ignore[index]
            item.eval_score, item.eval_scores = 0.3, {"add/pass@1": 0.3}
            item.durations = {**(item.durations or {}), "evaluation": 5.0}
        st.iterations = [
            *(st.iterations or []),
            IterationStatus(
                index=k,
                samples=32,
                accepted=6 + k,
                train_pass_rate=0.2,
                mean_reward=0.2,
                durations={"sampling": 20.0, **({"baselineEvaluation": 4.0} if k == 0 else {})},
            ),
        ]
        st.stage, st.message = "Training", f"iteration {k}: training"
        for done in (0, 1, 2):
            add(live("train", "steps", done, 2, k, loss=1.5 - done * 0.2))
        item = st.iterations[k]
        item.checkpoint = f"pvc://s/r/it-{k}/checkpoint"
        item.durations = {**(item.durations or {}), "training": 30.0}
        st.iteration = k + 1
    st.stage, st.message = "StartingSampler", "final evaluation: starting the sampler"
    add()
    st.stage, st.message = "Evaluating", "final evaluation: evaluating the final policy"
    add(live("eval add", "prompts", 10, 16, 2))
    last = st.iterations[1]
    last.eval_score, last.eval_scores = 0.4, {"add/pass@1": 0.4}
    last.durations = {**(last.durations or {}), "evaluation": 5.0}
    st.best = BestStatus(iteration=1, eval_score=0.4, checkpoint="pvc://s/r/it-1/checkpoint")
    st.stage, st.message = "Succeeded", "finished 2 iterations"
    add(polls=1)
    return states


def play(tty: bool, seconds_per_poll: float = 20.0) -> str:
    out = io.StringIO()
    console = Console(out, tty=tty)
    states = two_iterations()
    console.start(RFTRunStatus(), now=0.0)
    for second, (status, progress) in enumerate(states):
        train = 2 if status.iterations else None
        console.show(
            status,
            progress,
            now=second * seconds_per_poll,
            train_figures=lambda k, n=train: live("train", "steps", n or 0, 2, k, loss=1.1),
        )
    return out.getvalue()


def test_a_piped_console_has_one_line_per_stage_and_no_control_codes() -> None:
    text = play(tty=False)
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert len(lines) <= 30, text
    stages = [" ".join(line.split()[:3]) for line in lines if not line.startswith("  ..")]
    assert stages == [
        "it 0 sampler",
        "base eval add/pass@1",
        "it 0 sample",
        "it 0 train",
        "it 1 sampler",
        "it 0 eval",
        "it 1 sample",
        "it 1 train",
        "it 2 sampler",
        "it 1 eval",
    ]
    assert "kept 6 of 32 samples (pass rate 0.200, mean reward 0.200)  [20 s]" in text
    assert "it 0   train   6 samples, 2 steps, last loss 1.100  [30 s]" in text
    assert "add/pass@1 0.400 (+0.320)  [5 s]" in text
    # one progress line per stage once it ran 30 s (each lasts 60-180 s here, under 300 s)
    progress = [line for line in lines if line.startswith("  ..")]
    assert len(progress) == 8, progress
    assert "  .. it 0 sample: 0/16 prompts, 500 tok/s" in progress  # at 40 s into it
    assert "  .. StartingSampler: final evaluation: starting the sampler (40 s)" in progress
    # polls 1 s apart: stages shorter than 30 s print no progress line at all
    assert not [x for x in play(tty=False, seconds_per_poll=1.0).splitlines() if "  .." in x]


def test_a_terminal_console_redraws_the_progress_line_in_place() -> None:
    text = play(tty=True)
    assert "\r\x1b[K  .. it 0 sample: 8/16 prompts, 500 tok/s, ETA" in text
    assert "\r\x1b[K  .. it 1 train: 1/2 steps, 500 tok/s, loss 1.300, ETA" in text
    # what stays on screen: the stage lines (each progress line is cleared before them)
    final = [line.rsplit("\r\x1b[K", 1)[-1] for line in text.split("\n")]
    assert sum(1 for line in final if line.strip()) == 10


def test_progress_text_names_units_pace_and_time_left() -> None:
    progress = live("sample", "prompts", 8, 16, 0, resumed_at=4)
    # 4 prompts in 10 s by this process: 8 left take 20 s
    assert progress_text(progress) == "it 0 sample: 8/16 prompts, 500 tok/s, ETA 20 s"


def test_a_resumed_run_does_not_repeat_recorded_stages() -> None:
    states = two_iterations()
    middle = next(s for s, _ in states if s.iteration == 1)
    assert stage_lines(middle, middle) == []
    out = io.StringIO()
    console = Console(out, tty=False, progress=False)
    console.start(middle, now=0.0)
    console.show(states[-1][0], None, now=1.0)
    assert [line.split()[:3] for line in out.getvalue().splitlines()] == [
        ["it", "0", "eval"],
        ["it", "1", "sample"],
        ["it", "1", "train"],
        ["it", "1", "eval"],
    ]


def test_failure_names_the_reason_and_the_last_failed_pod(tmp_path: Path) -> None:
    for name, code, finished in (("r-it0-score-a", 1, 10.0), ("r-it0-sampler-b", 0, 20.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "timeline.json").write_text(
            json.dumps({"started": 1.0, "finished": finished, "exitCode": code})
        )
    (tmp_path / "r-it0-score-a" / "log").write_text("noise\n" * 30 + "Traceback\nBoom\n")
    status = RFTRunStatus(
        stage="Failed",
        message="scoring job r-it0-score failed: Boom",
        conditions=[
            Condition(
                type="Failed",
                status="True",
                reason="ScoringFailed",
                message="m",
                last_transition_time="2026-01-01T00:00:00Z",
            )
        ],
    )
    out = io.StringIO()
    Console(out, tty=False).failed(status, tmp_path)
    lines = out.getvalue().splitlines()
    assert lines[0] == "FAILED (ScoringFailed): scoring job r-it0-score failed: Boom"
    log = tmp_path / "r-it0-score-a" / "log"
    assert lines[1] == f"  pod r-it0-score-a exited with code 1; its log: {log}"
    assert lines[-2:] == ["    | Traceback", "    | Boom"] and len(lines) == 2 + 12
    assert failed_pod(tmp_path / "nothing") is None


BROKEN = """\
apiVersion: rft.dev/v1alpha1
kind: RFTRun
metadata: {name: broken}
spec:
  model: {uri: pvc://models/smollm2-135m-instruct}
  data: {train: pvc://data/train.jsonl}
  iterations: {max: 1}
  sampler:
    teacher: {url: "http://127.0.0.1:9/v1", model: teacher}
"""


def test_a_pod_that_fails_at_once_prints_the_reason_and_its_log_path(tmp_path: Path) -> None:
    """A real scoring pod (teacher mode: no sampler to wait for) rejects a bad data file."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\nnot json\n')
    (tmp_path / "run.yaml").write_text(BROKEN)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "rft_operator.cli", "run", str(tmp_path / "run.yaml")),
            *("--local", "--workdir", str(tmp_path / "work")),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    text = result.stdout
    assert "\x1b" not in text
    [failed] = [line for line in text.splitlines() if line.startswith("FAILED")]
    assert failed.startswith("FAILED (InvalidData): scoring job broken-it0-score failed")
    [pod_line] = [line for line in text.splitlines() if "its log:" in line]
    log = Path(pod_line.rsplit("its log: ", 1)[1])
    assert log.parent.parent == tmp_path / "work" / "cluster" / "pods"
    assert log.parent.name.startswith("broken-it0-score-") and log.is_file()
    assert "    | rft score failed: InvalidData" in text
    assert "train.jsonl:2" in text
    assert len(text.splitlines()) <= 20, text


def test_a_grpo_iteration_is_one_train_line_with_its_rewards() -> None:
    before = RFTRunStatus(iterations=[IterationStatus(index=0)])
    after = RFTRunStatus(
        iterations=[
            IterationStatus(
                index=0,
                samples=640,
                mean_reward=0.412,
                policy_lag=1,
                checkpoint="pvc://s/r/it-0/checkpoint",
                durations={"training": 90.0},
            )
        ]
    )
    figures = live("grpo", "steps", 20, 20, 0, loss=0.01, reward=0.55)
    lines = stage_lines(before, after, lambda k: figures)
    assert len(lines) == 1, lines  # no "sample" line: the training Job sampled
    assert "it 0   train" in lines[0]
    assert "GRPO on 640 completions (mean reward 0.412, policy lag 1)" in lines[0]
    assert "20 steps, last reward 0.550" in lines[0] and "[1m30s]" in lines[0]
    assert progress_text(figures).endswith("loss 0.010, reward 0.550")
