"""What the training Job tells the operator: a short JSON on the termination log."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

from rft_runtime.config.jobs import TERMINATION_LOG, FailureSummary

MAX_MESSAGE_BYTES = 4000  # the kubelet keeps at most 4 KiB


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


def termination_log_path() -> Path | None:
    """`$RFT_TERMINATION_LOG`, else /dev/termination-log when it can be written (in a pod)."""
    env = os.environ.get("RFT_TERMINATION_LOG")
    if env:
        return Path(env)
    path = Path(TERMINATION_LOG)
    if path.exists() and os.access(path, os.W_OK):
        return path
    return None


def write_termination(summary: BaseModel) -> None:
    """Write the summary (camelCase JSON, under 4 KiB); one writer per pod (local rank 0)."""
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return
    path = termination_log_path()
    if path is None:
        return
    data = summary.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = json.dumps(data)
    if len(text.encode()) > MAX_MESSAGE_BYTES and "message" in data:
        data["message"] = data["message"][:1000]
        text = json.dumps(data)
    # written in place: in a pod the file is a bind mount, which a rename cannot replace
    path.write_text(text, encoding="utf-8")


def failure(reason: str, message: str) -> FailureSummary:
    return FailureSummary(reason=reason, message=message[:2000])
