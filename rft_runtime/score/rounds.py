"""Extra sampling rounds for the prompts the first round did not solve (pure helpers).

Self-sampling stalls on prompts the policy never answers correctly: they yield no training
data, so the policy never learns them. Two opt-in rounds spend more on exactly those:
- **more samples** (`unsolvedExtraSamples`): the same request again, for unsolved prompts only;
- **rationalization** (STaR, `rationalize`): the prompt with its reference answer as a hint;
  completions the rewards verify are trained on *without* the hint.
Each round has its own progress log, so a killed Job resumes every round where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .data import PromptRow

ROUND_MORE = "more"
ROUND_HINT = "hint"


def is_solved(record: dict[str, Any]) -> bool:
    return any(c.get("correct") for c in record.get("completions", []))


def unsolved(rows: Sequence[PromptRow], records: Sequence[dict[str, Any]]) -> list[PromptRow]:
    """Rows (in order) whose record has no correct completion; records align with rows."""
    return [row for row, record in zip(rows, records, strict=True) if not is_solved(record)]


def hinted(row: PromptRow, template: str) -> PromptRow:
    """The row with its reference answer shown as a hint ({prompt}, {answer} in the template)."""
    return replace(row, prompt=template.format(prompt=row.prompt, answer=row.answer))


def merge(
    records: Sequence[dict[str, Any]], extra: Sequence[dict[str, Any]], source: str
) -> list[dict[str, Any]]:
    """The first round's records with another round's completions appended (renumbered, and
    marked with the round). The record keeps its own prompt: training never sees a hint."""
    by_id = {r["id"]: r for r in extra}
    merged = []
    for record in records:
        more = by_id.get(record["id"])
        if more is None:
            merged.append(record)
            continue
        base = len(record["completions"])
        added = [
            {**c, "index": base + i, "round": source} for i, c in enumerate(more["completions"])
        ]
        merged.append(
            {
                **record,
                "completions": [*record["completions"], *added],
                "tokens": int(record.get("tokens", 0)) + int(more.get("tokens", 0)),
            }
        )
    return merged


def round_metrics(
    first: Sequence[dict[str, Any]], extra: Sequence[dict[str, Any]], name: str
) -> dict[str, Any]:
    """What a round cost and bought: prompts asked, samples, newly solved prompts, tokens."""
    return {
        f"{name}_prompts": len(extra),
        f"{name}_samples": sum(len(r["completions"]) for r in extra),
        f"{name}_solved": sum(1 for r in extra if is_solved(r)),
        f"{name}_tokens": sum(int(r.get("tokens", 0)) for r in extra),
    }
