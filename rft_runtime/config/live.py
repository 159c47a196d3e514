"""Live progress of a running job: the contract between the jobs and what watches them.

A job writes its progress as one small JSON file, `<iteration dir>/live/<job>.json`
(`IterationPaths.live`), rewritten atomically every few seconds; `rft run --local`'s
console reads it. On a cluster the same figures are Prometheus gauges on the pod's
metrics port (`METRICS_PORT`), named below, which the chart's Grafana dashboard plots.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ApiModel

METRICS_PORT = 9400  # the scoring and training pods' Prometheus port (named "metrics")
METRICS_PORT_NAME = "metrics"

# Prometheus series of a job pod; labels: run, iteration, component (score, train), phase.
PROGRESS_DONE = "rft_job_progress_done"  # prompts (scoring) or steps (training) done
PROGRESS_TOTAL = "rft_job_progress_total"
TOKENS_PER_SECOND = "rft_job_tokens_per_second"
TRAIN_LOSS = "rft_job_train_loss"  # the last optimizer step's loss
JOB_LABELS = ("run", "iteration", "component", "phase")  # "job" is Prometheus'


class LiveProgress(ApiModel):
    """Where one job is in its current phase (a pass over prompts, or the training steps)."""

    job: Literal["score", "train"]
    run: str
    iteration: int
    phase: str = Field(description="e.g. 'eval add', 'sample', 'train'.")
    unit: Literal["prompts", "steps"]
    done: int = Field(ge=0, description="Units done, earlier attempts of the pod included.")
    total: int = Field(ge=0)
    resumed_at: int = Field(0, ge=0, description="Units done before this process started.")
    tokens: float = Field(0.0, description="Tokens generated or trained by this process.")
    elapsed_seconds: float = Field(0.0, description="Since this process started the phase.")
    loss: float | None = None
    reward: float | None = Field(None, description="grpo: the last step's mean reward.")
    finished: bool = False
    updated: float = Field(description="Unix time of this write.")

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.elapsed_seconds if self.elapsed_seconds > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time at this process's pace so far; None until 5 % of its units are done
        (the first prompts finish while dozens more are in flight: their pace says nothing)."""
        pace = self.done - self.resumed_at
        if pace <= 0 or pace < 0.05 * (self.total - self.resumed_at) or self.elapsed_seconds <= 0:
            return None
        return (self.total - self.done) * self.elapsed_seconds / pace
