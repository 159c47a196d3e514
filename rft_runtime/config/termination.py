"""The termination message: one short JSON summary a job leaves for the operator.

One writer (the jobs), one reader (the operator's observation of a finished pod, and the
process kubelet), one size limit: the kubelet keeps at most 4 KiB.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .env import TERMINATION_LOG_ENV
from .jobs import FailureSummary
from .paths import TERMINATION_LOG

TERMINATION_LIMIT = 4096  # bytes a kubelet keeps of a termination message
# FailureSummary reasons the operator acts on (others are shown as they are).
INVALID_DATA = "InvalidData"  # the scoring Job found bad rows: the run fails with this reason
_BULKY_KEYS = ("seconds", "evalScores")  # dropped first when a message is too long


def termination_log_path() -> Path | None:
    """`$RFT_TERMINATION_LOG`, else /dev/termination-log when it can be written (in a pod)."""
    configured = os.environ.get(TERMINATION_LOG_ENV)
    if configured:
        return Path(configured)
    default = Path(TERMINATION_LOG)
    return default if default.exists() and os.access(default, os.W_OK) else None


def fit_message(payload: dict[str, Any], limit: int = TERMINATION_LIMIT) -> str:
    """JSON under the limit: drop the bulkiest optional parts first, then truncate strings."""
    payload = dict(payload)
    text = json.dumps(payload, separators=(",", ":"))
    for key in _BULKY_KEYS:
        if len(text.encode()) < limit:
            break
        payload.pop(key, None)
        text = json.dumps(payload, separators=(",", ":"))
    if len(text.encode()) >= limit and isinstance(payload.get("message"), str):
        overflow = len(text.encode()) - limit + 64
        payload["message"] = payload["message"][: max(0, len(payload["message"]) - overflow)]
        text = json.dumps(payload, separators=(",", ":"))
    return text


def write_termination(summary: BaseModel | dict[str, Any]) -> Path | None:
    """Write the summary (camelCase JSON, under the limit); one writer per pod (local rank
    0). Best effort: the summary must never turn a success into a failure."""
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return None
    path = termination_log_path()
    if path is None:
        return None
    payload = (
        summary.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(summary, BaseModel)
        else summary
    )
    try:
        # written in place: in a pod the file is a bind mount, which a rename cannot replace
        path.write_text(fit_message(payload), encoding="utf-8")
    except OSError:
        return None
    return path


def read_termination(text: str | bytes | None) -> dict[str, Any] | None:
    """The summary in a termination message (None when empty or not a JSON object)."""
    if not text:
        return None
    if isinstance(text, bytes):
        text = text[:TERMINATION_LIMIT].decode("utf-8", errors="replace")
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def failure_text(summary: dict[str, Any] | None, fallback: str) -> str:
    """'<reason>: <message>' of a FailureSummary, else `fallback`."""
    try:
        failure = FailureSummary.model_validate(summary or {})
    except ValidationError:
        return fallback
    return f"{failure.reason}: {failure.message}"


def failed_with(text: str, reason: str) -> bool:
    """Whether `text` (a `failure_text`) reports a failure for `reason`."""
    return text.startswith(reason + ":")
