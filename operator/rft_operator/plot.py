"""`rft report DIR --out report.png`: eval scores and mean reward per iteration, drawn."""

from __future__ import annotations

import io
from pathlib import Path

from rft_runtime.files import atomic_write_bytes

from .api import RFTRunStatus


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


def draw(status: RFTRunStatus, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, metrics, rewards = series(status)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    x = list(range(len(labels)))
    for name, values in metrics.items():
        points = [(i, v) for i, v in zip(x, values, strict=True) if v is not None]
        left.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    left.set_xticks(x, labels)
    left.set_ylim(0, 1)
    left.set_title("evaluation (per policy)")
    left.legend()
    points = [(i, r) for i, r in zip(x, rewards, strict=True) if r is not None]
    right.bar([p[0] for p in points], [p[1] for p in points], color="tab:green")
    right.set_xticks(
        x,
        [
            "policy " + label.removeprefix("after ").replace("base", "0")
            if label == "base"
            else f"policy {int(label.split()[1]) + 1}"
            for label in labels
        ],
    )
    right.set_title("mean reward of sampled completions")
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out, image.getvalue())
