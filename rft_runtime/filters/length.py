"""Drop completions outside the length limits (characters, whitespace-separated words)."""

from __future__ import annotations

from ..config.filter_spec import LengthSpec
from .base import Sample


def within(text: str, spec: LengthSpec) -> bool:
    chars = len(text)
    if spec.min_chars is not None and chars < spec.min_chars:
        return False
    if spec.max_chars is not None and chars > spec.max_chars:
        return False
    if spec.min_words is None and spec.max_words is None:
        return True
    words = len(text.split())
    if spec.min_words is not None and words < spec.min_words:
        return False
    return spec.max_words is None or words <= spec.max_words


def length_filter(group: list[Sample], spec: LengthSpec) -> list[Sample]:
    return [s for s in group if within(s.completion, spec)]
