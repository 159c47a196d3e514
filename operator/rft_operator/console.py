"""What `rft run --local` prints while it runs: one line per finished stage with its
figures, one live progress line for the running stage, and, on a failure, the reason with
the end of the failed child's log.

Everything shown comes from what the run already records — its status (stage, the
iteration records), the jobs' live progress files (`config.live`) and the process
kubelet's pod timelines — never from the children's output, which goes to each pod's log
file. The line builders are pure functions of those records; `Console` only decides when
to print them: on a terminal the progress line is redrawn in place, elsewhere (a pipe, CI)
it is printed as a plain line now and then (`Console.progress_after`, `progress_every`),
with no control codes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rft_runtime.config.live import LiveProgress

from .api import IterationStatus, RFTRunStatus
from .conditions import condition_status
from .progress import BASELINE_EVALUATION, EVALUATION, TRAINING

SAMPLING = "sampling"  # IterationStatus.durations key of the sampling pass (the job's own)
TAIL_LINES = 12
CLEAR_LINE = "\r\x1b[K"


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    value = round(value)
    if value < 90:
        return f"{value} s"
    minutes, secs = divmod(value, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _scores(scores: dict[str, float] | None, base: dict[str, float] | None = None) -> str:
    parts = []
    for key, value in (scores or {}).items():
        text = f"{key} {value:.3f}"
        if base and key in base:
            text += f" ({value - base[key]:+.3f})"
        parts.append(text)
    return "  ".join(parts) or "no score"


def _line(who: str, what: str, figures: str, secs: float | None) -> str:
    tail = f"  [{seconds_text(secs)}]" if secs is not None else ""
    return f"  {who:<6} {what:<7} {figures}{tail}"


def _by_index(status: RFTRunStatus | None) -> dict[int, IterationStatus]:
    return {i.index: i for i in (status.iterations if status else None) or []}


TrainFigures = Callable[[int], LiveProgress | None]


def stage_lines(
    old: RFTRunStatus | None, new: RFTRunStatus, train_figures: TrainFigures | None = None
) -> list[str]:
    """A line for each figure `new` records that `old` did not: the base model's
    evaluation, then per iteration its sampling, training and the evaluation after it."""
    lines: list[str] = []
    base = new.baseline.eval_scores if new.baseline else None
    had_base = bool(old and old.baseline and old.baseline.eval_scores is not None)
    first = _by_index(new).get(0)
    if base is not None and not had_base:
        secs = (first.durations or {}).get(BASELINE_EVALUATION) if first else None
        lines.append(_line("base", "eval", _scores(base), secs))
    before = _by_index(old)
    for index, item in sorted(_by_index(new).items()):
        was = before.get(index) or IterationStatus(index=index)
        durations = item.durations or {}
        who = f"it {index}"
        grpo = item.policy_lag is not None  # the training Job sampled (method grpo)
        if item.samples is not None and was.samples is None and not grpo:
            rate = "-" if item.train_pass_rate is None else f"{item.train_pass_rate:.3f}"
            reward = "-" if item.mean_reward is None else f"{item.mean_reward:.3f}"
            figures = (
                f"kept {item.accepted or 0} of {item.samples} samples "
                f"(pass rate {rate}, mean reward {reward})"
            )
            lines.append(_line(who, "sample", figures, durations.get(SAMPLING)))
        if item.checkpoint is not None and was.checkpoint is None:
            if grpo:
                reward = "-" if item.mean_reward is None else f"{item.mean_reward:.3f}"
                figures = f"GRPO on {item.samples} completions (mean reward {reward}"
                figures += f", policy lag {item.policy_lag})"
                done = train_figures(index) if train_figures else None
                if done is not None:
                    figures += f", {done.done} steps"
                    if done.reward is not None:
                        figures += f", last reward {done.reward:.3f}"
                lines.append(_line(who, "train", figures, durations.get(TRAINING)))
            elif not item.accepted:
                lines.append(_line(who, "train", "skipped: no sample kept", None))
            else:
                figures = f"{item.accepted} samples"
                done = train_figures(index) if train_figures else None
                if done is not None:
                    figures += f", {done.done} steps"
                    if done.loss is not None:
                        figures += f", last loss {done.loss:.3f}"
                lines.append(_line(who, "train", figures, durations.get(TRAINING)))
        if item.eval_scores is not None and was.eval_scores is None:
            lines.append(
                _line(who, "eval", _scores(item.eval_scores, base), durations.get(EVALUATION))
            )
    return lines


def progress_text(live: LiveProgress) -> str:
    """The running phase: units done of total, pace, loss, time left."""
    parts = [f"{live.done}/{live.total} {live.unit}"]
    rate = live.tokens_per_second
    if rate is not None:
        parts.append(f"{rate:.0f} tok/s")
    if live.loss is not None:
        parts.append(f"loss {live.loss:.3f}")
    if live.reward is not None:
        parts.append(f"reward {live.reward:.3f}")
    eta = live.eta_seconds
    if eta is not None and live.done < live.total:
        parts.append(f"ETA {seconds_text(eta)}")
    return f"it {live.iteration} {live.phase}: " + ", ".join(parts)


def waiting_text(status: RFTRunStatus, secs: float) -> str:
    """No job progress yet (a sampler starting, a job loading its model): the status says."""
    return f"{status.stage or 'Pending'}: {status.message or '...'} ({seconds_text(secs)})"


@dataclass(frozen=True)
class FailedPod:
    name: str
    log: Path
    exit_code: int


def failed_pod(pods_dir: Path) -> FailedPod | None:
    """The pod that failed last, from the kubelet's timelines (they outlive the pods)."""
    found: list[tuple[float, FailedPod]] = []
    for path in pods_dir.glob("*/timeline.json"):
        try:
            timeline = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        code = timeline.get("exitCode")
        if isinstance(code, int) and code != 0:
            pod = FailedPod(path.parent.name, path.parent / "log", code)
            found.append((float(timeline.get("finished") or 0.0), pod))
    return max(found, key=lambda f: f[0])[1] if found else None


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line[-300:] for line in text.splitlines() if line.strip()][-lines:]


def failure_lines(status: RFTRunStatus, pod: FailedPod | None) -> list[str]:
    """Why the run failed, and where to read the child's whole log."""
    reason = next(
        (c.reason for c in status.conditions or [] if c.type == "Failed" and c.status == "True"),
        None,
    )
    lines = [f"FAILED ({reason or 'Failed'}): {status.message or 'no message'}"]
    if pod is not None:
        lines.append(f"  pod {pod.name} exited with code {pod.exit_code}; its log: {pod.log}")
        lines += [f"    | {line}" for line in log_tail(pod.log)]
    return lines


@dataclass
class Console:
    """Prints stage lines and the progress line; `tty` chooses in-place redraws."""

    out: TextIO
    tty: bool
    # Without a terminal: a stage's first progress line once it has run `progress_after`
    # seconds (short stages print none), then one every `progress_every` seconds — a
    # heartbeat for CI logs that adds a line or two per stage, not one per poll.
    progress_after: float = 30.0
    progress_every: float = 300.0
    progress: bool = True
    last: RFTRunStatus | None = None
    _shown: str = ""  # the progress line now on screen (tty)
    _printed_at: float = field(default=-1e18)
    _stage: tuple[str | None, int | None] = (None, None)
    _stage_since: float = 0.0

    def start(self, status: RFTRunStatus, now: float) -> None:
        """What was recorded before this invocation is not news (a resumed run)."""
        self.last = status
        self._stage = (status.stage, status.iteration)
        self._stage_since = now

    def print(self, lines: Iterable[str]) -> None:
        lines = list(lines)
        if not lines:
            return
        if self._shown:
            self.out.write(CLEAR_LINE)
            self._shown = ""
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def show(
        self,
        status: RFTRunStatus,
        live: LiveProgress | None,
        now: float,
        train_figures: TrainFigures | None = None,
    ) -> None:
        """One poll of the run: print what finished since the last poll, then progress."""
        lines = stage_lines(self.last, status, train_figures)
        ended = status.stage in ("Sampling", "Evaluating", "Training")
        if self._stage[0] == "StartingSampler" and ended:
            k = self._stage[1] or 0
            lines.insert(0, _line(f"it {k}", "sampler", "ready", now - self._stage_since))
        if (status.stage, status.iteration) != self._stage:
            self._stage = (status.stage, status.iteration)
            self._stage_since = now
            self._printed_at = -1e18
        self.last = status
        self.print(lines)
        if not self.progress or status.stage in ("Succeeded", "Failed", "Suspended"):
            self.clear()
            return
        live = live if live is not None and not live.finished else None
        text = progress_text(live) if live else waiting_text(status, now - self._stage_since)
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self._shown = "  .. " + text
            self.out.write(CLEAR_LINE + self._shown[:width])
            self.out.flush()
        elif (
            now - self._stage_since >= self.progress_after
            and now - self._printed_at >= self.progress_every
        ):
            self._printed_at = now
            self.print(["  .. " + text])

    def clear(self) -> None:
        if self._shown:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self._shown = ""

    def failed(self, status: RFTRunStatus, pods_dir: Path) -> None:
        if condition_status(status.conditions, "Failed") != "True":
            return
        self.print(failure_lines(status, failed_pod(pods_dir)))
