"""Why a training Job failed, in words that name the knob to turn (its FailureSummary)."""

from __future__ import annotations

from rft_runtime.config.jobs import FailureSummary


class TrainFailure(Exception):
    """A failure the user can fix: `reason` is machine-readable, `message` names the knob."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


OOM_MESSAGE = (
    "out of memory while training; lower training.batchSize, raise "
    "training.gradientAccumulationSteps, enable training.deepspeed.offloadOptimizer "
    "(zeroStage >= 1) or offloadParams (zeroStage 3), or use training.mode: lora"
)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA OOM has its own type; the CPU allocator only says so in the message."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def failure(reason: str, message: str) -> FailureSummary:
    return FailureSummary(reason=reason, message=message[:2000])
