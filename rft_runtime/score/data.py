"""Prompt loading: JSONL, Parquet, or a `datasets.save_to_disk` directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.jobs import PromptSource
from ..jsonl import JsonlError, read_jsonl


class PromptsUnreadable(Exception):
    """The prompt file is missing, malformed, or lacks a configured field."""


@dataclass(frozen=True)
class PromptRow:
    id: str
    prompt: str
    answer: str
    columns: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """The row's other fields (rewards with `answerField` read them, e.g. `tests`)."""


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        for number, row in read_jsonl(path):
            if not isinstance(row, dict):
                raise PromptsUnreadable(f"{path}:{number}: expected a JSON object per line")
            yield row
    except JsonlError as exc:
        raise PromptsUnreadable(str(exc)) from exc


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    yield from pq.read_table(path).to_pylist()


def _dataset_rows(path: Path) -> Iterator[dict[str, Any]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    if isinstance(loaded, DatasetDict):
        split = "train" if "train" in loaded else next(iter(loaded))
        loaded = loaded[split]
    assert isinstance(loaded, Dataset)
    for row in loaded:
        yield dict(row)


def raw_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a prompt file, chosen by what the path is."""
    if not path.exists():
        raise PromptsUnreadable(f"prompt file {path} does not exist")
    if path.is_dir():
        return _dataset_rows(path)
    if path.suffix == ".parquet":
        return _parquet_rows(path)
    return _jsonl_rows(path)


def load_prompts(source: PromptSource) -> list[PromptRow]:
    """Rows with the configured fields (the iteration's window of them, if one is set); the id
    defaults to the row index. Ids must be unique across the file, because they key the
    resume bookkeeping."""
    rows: list[PromptRow] = []
    seen: set[str] = set()
    for index, row in enumerate(raw_rows(Path(source.path))):
        if source.max_rows is not None and index >= source.max_rows:
            break
        for name in (source.prompt_field, source.answer_field):
            if name not in row:
                raise PromptsUnreadable(
                    f"{source.path} row {index} has no field {name!r} "
                    f"(fields: {', '.join(sorted(row))}); set promptField/answerField"
                )
        key = str(row[source.id_field]) if source.id_field else str(index)
        if key in seen:
            raise PromptsUnreadable(
                f"{source.path}: duplicate id {key!r} in field {source.id_field}"
            )
        seen.add(key)
        columns = {k: v for k, v in row.items() if k not in (source.prompt_field,)}
        rows.append(
            PromptRow(key, str(row[source.prompt_field]), str(row[source.answer_field]), columns)
        )
    return iteration_window(rows, source.per_iteration, source.iteration)


def iteration_window(rows: list[PromptRow], size: int | None, iteration: int) -> list[PromptRow]:
    """Iteration k's `size` rows: the k-th run of `size` consecutive rows, in file order and
    wrapping around at the end. Every prompt is used once before any is used again, so a
    file larger than one iteration's budget gives each iteration new problems to learn
    from. All rows when `size` is unset or covers the file."""
    if size is None or size >= len(rows):
        return rows
    start = iteration * size % len(rows)
    return [rows[(start + offset) % len(rows)] for offset in range(size)]
