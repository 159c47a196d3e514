"""Files: atomic writes, the append-only progress log, and the termination message."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..jsonl import JsonlError, dumps_line, dumps_lines, iter_lines, parse_line

TERMINATION_LOG_ENV = "RFT_TERMINATION_LOG"
TERMINATION_LIMIT = 4096


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    atomic_write_text(path, dumps_lines(rows))


class ProgressLog:
    """Append-only JSONL of per-prompt results keyed by `id`, fsync'd after each record.

    Opening it truncates a torn last line (a process killed mid-write) so later appends
    start on a clean line; the first record of an id wins, so each prompt counts once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self._recover()
        self._handle = self.path.open("a", encoding="utf-8")

    def _recover(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = 0  # byte offset after the last complete, valid line
        for line in iter_lines(data):
            if not line.complete:
                break
            try:
                record = parse_line(line, self.path)
                key = str(record["id"])
            except (JsonlError, KeyError, TypeError):
                break
            self.records.setdefault(key, record)
            good += len(line.data) + 1
        if good < len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(good)
                handle.flush()
                os.fsync(handle.fileno())

    def __contains__(self, prompt_id: str) -> bool:
        return prompt_id in self.records

    def append(self, record: dict[str, Any]) -> None:
        key = str(record["id"])
        if key in self.records:
            return
        self._handle.write(dumps_line(record))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.records[key] = record

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def termination_log_path() -> Path | None:
    """`$RFT_TERMINATION_LOG`, else Kubernetes' /dev/termination-log when it exists."""
    configured = os.environ.get(TERMINATION_LOG_ENV)
    if configured:
        return Path(configured)
    default = Path("/dev/termination-log")
    return default if default.exists() and os.access(default, os.W_OK) else None


def fit_message(payload: dict[str, Any], limit: int = TERMINATION_LIMIT) -> str:
    """JSON under the limit: drop the bulkiest optional parts first, then truncate strings."""
    payload = dict(payload)
    text = json.dumps(payload, separators=(",", ":"))
    for key in ("seconds", "evalScores"):
        if len(text.encode()) < limit:
            break
        payload.pop(key, None)
        text = json.dumps(payload, separators=(",", ":"))
    if len(text.encode()) >= limit and isinstance(payload.get("message"), str):
        overflow = len(text.encode()) - limit + 64
        payload["message"] = payload["message"][: max(0, len(payload["message"]) - overflow)]
        text = json.dumps(payload, separators=(",", ":"))
    return text


def write_termination(payload: dict[str, Any]) -> Path | None:
    """Best effort: the summary must never turn a success into a failure."""
    path = termination_log_path()
    if path is None:
        return None
    try:
        path.write_text(fit_message(payload), encoding="utf-8")
    except OSError:
        return None
    return path
