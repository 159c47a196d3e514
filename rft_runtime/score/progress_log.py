"""The scoring Job's append-only progress log (what a restarted pod need not redo)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..jsonl import JsonlError, dumps_line, iter_lines, parse_line


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
