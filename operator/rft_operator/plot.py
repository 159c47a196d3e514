"""`rft report RUN --out report.png`: one PNG of a run — eval scores per policy, mean reward
and train pass rate per iteration, kept samples, and each stage's duration per iteration.

The figures are pure functions of the status (`series`, `iteration_series`); `draw` only
lays them out.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rft_runtime.files import atomic_write_bytes

from .api import RFTRunStatus
from .progress import BASELINE_EVALUATION, EVALUATION, TRAINING

# Stage durations in the order a run spends them; labels as the legend says them.
STAGE_ORDER = {
    BASELINE_EVALUATION: "base eval",
    "sampling": "sampling",
    TRAINING: "training",
    EVALUATION: "eval",
}


def series(
    status: RFTRunStatus,
) -> tuple[list[str], dict[str, list[float | None]], list[float | None]]:
    """x labels (base, after 0, after 1, ...), eval score per metric, mean reward per x."""
    labels = ["base"] + [f"after {i.index}" for i in status.iterations or []]
    rows = [status.baseline.eval_scores if status.baseline else None]
    rows += [i.eval_scores for i in status.iterations or []]
    metrics: dict[str, list[float | None]] = {}
    for key in [k for row in rows for k in (row or {})]:
        metrics.setdefault(key, [(row or {}).get(key) for row in rows])
    # mean reward of the samples drawn from each policy (policy k samples in iteration k)
    rewards = [i.mean_reward for i in status.iterations or []] + [None]
    return labels, metrics, rewards


@dataclass
class IterationSeries:
    """Per iteration: its label, sampled-data figures, and seconds per stage."""

    labels: list[str] = field(default_factory=list)
    mean_reward: list[float | None] = field(default_factory=list)
    pass_rate: list[float | None] = field(default_factory=list)
    kept: list[int | None] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)  # stage -> per iteration


def iteration_series(status: RFTRunStatus) -> IterationSeries:
    out = IterationSeries()
    items = status.iterations or []
    stages = [s for s in STAGE_ORDER if any(s in (i.durations or {}) for i in items)]
    stages += sorted({k for i in items for k in i.durations or {}} - set(stages))
    out.seconds = {s: [] for s in stages}
    for item in items:
        out.labels.append(f"it {item.index}")
        out.mean_reward.append(item.mean_reward)
        out.pass_rate.append(item.train_pass_rate)
        out.kept.append(item.accepted)
        for stage in stages:
            out.seconds[stage].append(float((item.durations or {}).get(stage, 0.0)))
    return out


def _points(values: Sequence[float | None]) -> tuple[list[int], list[float]]:
    kept = [(i, v) for i, v in enumerate(values) if v is not None]
    return [i for i, _ in kept], [v for _, v in kept]


def draw(status: RFTRunStatus, out: Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, metrics, _ = series(status)
    its = iteration_series(status)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    (scores, data), (kept, times) = axes

    x = list(range(len(labels)))
    for name, values in metrics.items():
        xs, ys = _points(values)
        scores.plot(xs, ys, marker="o", label=name)
        for xp, yp in zip(xs, ys, strict=True):
            scores.annotate(f"{yp:.2f}", (xp, yp), textcoords="offset points", xytext=(0, 6))
    scores.set_xticks(x, ["base model", *[f"after it {i.index}" for i in status.iterations or []]])
    scores.set_ylim(0, 1.05)
    scores.set_ylabel("score")
    scores.set_title("held-out evaluation per policy")
    if metrics:
        scores.legend(loc="lower right")

    xi = list(range(len(its.labels)))
    width = 0.38
    for offset, values, name, color in (
        (-width / 2, its.mean_reward, "mean reward", "tab:green"),
        (width / 2, its.pass_rate, "train pass rate (kept share)", "tab:purple"),
    ):
        xs, ys = _points(values)
        data.bar([v + offset for v in xs], ys, width, label=name, color=color)
    data.set_xticks(xi, its.labels)
    data.set_ylabel("per sampled completion")
    data.set_title("sampled training data per iteration")
    data.legend(loc="upper left")

    xs, ys = _points([None if k is None else float(k) for k in its.kept])
    kept.bar(xs, ys, color="tab:blue")
    for xk, yk in zip(xs, ys, strict=True):
        kept.annotate(f"{yk:.0f}", (xk, yk), ha="center", textcoords="offset points", xytext=(0, 3))
    kept.set_xticks(xi, its.labels)
    kept.set_ylabel("examples")
    kept.set_title("kept samples (the training set) per iteration")

    bottom = [0.0] * len(its.labels)
    for stage, seconds in its.seconds.items():
        times.bar(xi, seconds, 0.6, bottom=bottom, label=STAGE_ORDER.get(stage, stage))
        bottom = [b + v for b, v in zip(bottom, seconds, strict=True)]
    times.set_xticks(xi, its.labels)
    times.set_ylabel("seconds")
    times.set_title("stage durations per iteration")
    if its.seconds:
        times.legend(loc="best")

    if title:
        fig.suptitle(f"RFTRun {title}: {status.stage or '-'}")
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out, image.getvalue())
