"""Progress: a tqdm bar on a terminal, periodic plain log lines in a pod."""

from __future__ import annotations

import sys
import time
from typing import Any

from .. import live


class Progress:
    def __init__(self, label: str, total: int, done: int = 0, every_seconds: float = 15.0) -> None:
        self.label, self.total, self.done = label, total, done
        self.every = every_seconds
        self.tokens = 0
        self._start = self._last = time.monotonic()
        self._bar: Any = None
        live.current().start(label, "prompts", total, done)
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, desc=label, unit="prompt")
        else:
            self._log(force=True)

    def _log(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every and self.done < self.total:
            return
        self._last = now
        rate = self.tokens / max(now - self._start, 1e-9)
        print(
            f"[{self.label}] {self.done}/{self.total} prompts, {self.tokens} tokens "
            f"({rate:.0f} tok/s)",
            file=sys.stderr,
            flush=True,
        )

    def update(self, tokens: int) -> None:
        self.done += 1
        self.tokens += tokens
        live.current().advance(self.done, tokens)
        if self._bar is not None:
            self._bar.update(1)
        else:
            self._log()

    def close(self) -> None:
        live.current().finish()
        if self._bar is not None:
            self._bar.close()
