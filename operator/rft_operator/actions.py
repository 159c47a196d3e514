"""The planner's vocabulary: what a backend observed (`Child`, `Run`) and what the planner
asks of it (the actions of a `Plan`). The reconcile pass turns actions into Kubernetes
objects; `observe` turns objects back into `Child` records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rft_runtime.config.jobs import ScoreJobConfig, ServeConfig, TrainJobConfig

from .api import RFTRunSpec, RFTRunStatus

ChildKind = Literal["sampler", "score", "train"]
Phase = Literal["Pending", "Running", "Ready", "Succeeded", "Failed", "Suspended"]


@dataclass(frozen=True)
class Child:
    """What the backend observed about one child (Deployment or Job, or a local process)."""

    name: str
    kind: ChildKind
    index: int
    phase: Phase
    summary: dict[str, Any] | None = None  # the parsed termination message
    message: str = ""  # why it failed, in words
    held: bool = False  # suspended by the operator (spec.suspend), not by a queue


@dataclass(frozen=True)
class StartSampler:
    name: str
    index: int
    config: ServeConfig


@dataclass(frozen=True)
class StartScoreJob:
    name: str
    index: int
    config: ScoreJobConfig


@dataclass(frozen=True)
class StartTrainJob:
    name: str
    index: int
    config: TrainJobConfig


@dataclass(frozen=True)
class Delete:
    name: str
    kind: ChildKind


@dataclass(frozen=True)
class SuspendChild:
    name: str
    kind: ChildKind


@dataclass(frozen=True)
class ResumeChild:
    name: str
    kind: ChildKind


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = StartSampler | StartScoreJob | StartTrainJob | Delete | SuspendChild | ResumeChild | Event


@dataclass(frozen=True)
class Run:
    """The parts of an RFTRun object the planner reads."""

    name: str
    spec: RFTRunSpec
    status: RFTRunStatus = field(default_factory=RFTRunStatus)
    generation: int | None = None
    retry: str | None = None  # the rft.dev/retry annotation: a new value retries a Failed run


@dataclass
class Plan:
    actions: list[Action]
    status: RFTRunStatus

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]
