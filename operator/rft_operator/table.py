"""The per-iteration table printed at the end of a run and by `rft status DIR`."""

from __future__ import annotations

from .api import RFTRunStatus


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def status_table(status: RFTRunStatus) -> str:
    """Iteration rows (the base model first), one column per eval metric, then training data
    and wall time per stage."""
    metrics: list[str] = []
    rows_scores = [status.baseline.eval_scores if status.baseline else None]
    rows_scores += [i.eval_scores for i in status.iterations or []]
    for scores in rows_scores:
        for key in scores or {}:
            if key not in metrics:
                metrics.append(key)
    stages: list[str] = []
    for item in status.iterations or []:
        for key in item.durations or {}:
            if key not in stages:
                stages.append(key)
    header = [
        "iteration",
        *metrics,
        "pass rate",
        "kept",
        "mean reward",
        *[f"{s} s" for s in stages],
    ]
    rows = []
    if status.baseline is not None:
        base = status.baseline.eval_scores or {}
        rows.append(
            ["base", *[_fmt(base.get(m)) for m in metrics], "", "", "", *["" for _ in stages]]
        )
    for item in status.iterations or []:
        scores = item.eval_scores or {}
        durations = item.durations or {}
        rows.append(
            [
                str(item.index),
                *[_fmt(scores.get(m)) for m in metrics],
                _fmt(item.train_pass_rate),
                "-" if item.accepted is None else str(item.accepted),
                _fmt(item.mean_reward),
                *[_fmt(durations.get(s), 0) for s in stages],
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    summary = f"stage: {status.stage or '-'}"
    if status.message:
        summary += f" — {status.message}"
    if status.best is not None:
        summary += f"\nbest: iteration {status.best.iteration} ({_fmt(status.best.eval_score)})"
        summary += f" at {status.best.checkpoint}"
    return "\n".join(lines) + "\n" + summary
