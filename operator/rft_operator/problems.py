"""One thing wrong with a manifest: where, what, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    fix: str

    def render(self) -> str:
        return f"{self.path or '(document)'}: {self.message}\n    fix: {self.fix}"

    def sentence(self) -> str:
        """One line for a condition message: `<path>: <message>; <fix>`."""
        return f"{self.path}: {self.message}; {self.fix}"
