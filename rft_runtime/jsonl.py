"""JSON Lines, written and read by one pair of functions on both sides of every job.

A line ends at `\\n` and nowhere else. `str.splitlines()` and text-mode iteration also break
at U+2028, U+0085, `\\r` and other separators that `json.dumps(..., ensure_ascii=False)`
leaves unescaped inside strings, so a completion containing one would be cut in two. Rows
are written as UTF-8 with non-ASCII text kept readable; a string that cannot be encoded as
UTF-8 (a lone surrogate) is written with `\\u` escapes instead, so any Python string
round-trips.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .files import atomic_write_text

NEWLINE = b"\n"


def dumps_line(row: Any) -> str:
    """One row as a line of JSON text, newline included."""
    text = json.dumps(row, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escape them (json.loads restores them)
        text = json.dumps(row, ensure_ascii=True)
    return text + "\n"


def dumps_lines(rows: Iterable[Any]) -> str:
    """Many rows as JSON Lines text (what `atomic_write_jsonl` writes)."""
    return "".join(dumps_line(row) for row in rows)


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    """Write `rows` as a whole file, atomically (see files.py)."""
    atomic_write_text(path, dumps_lines(rows))


@dataclass(frozen=True)
class Line:
    """One line of a JSONL file as bytes: its 1-based number and content (no `\\n`)."""

    number: int
    data: bytes
    complete: bool  # ended with `\n` (false only for a last line without one)


def iter_stream(handle: BinaryIO) -> Iterator[Line]:
    """The lines of a binary stream (binary iteration splits on `\\n` only)."""
    for number, raw in enumerate(handle, 1):
        complete = raw.endswith(NEWLINE)
        yield Line(number, raw[:-1] if complete else raw, complete)


def iter_lines(data: bytes) -> Iterator[Line]:
    """The lines of `data`, split on `\\n` only."""
    return iter_stream(io.BytesIO(data))


class JsonlError(ValueError):
    """A line that is not UTF-8 JSON; the message names the file and the line."""

    def __init__(self, path: str | Path, number: int, problem: str) -> None:
        super().__init__(f"{path}:{number}: {problem}")
        self.path = str(path)
        self.number = number
        self.problem = problem


def parse_line(line: Line, path: str | Path = "<data>") -> Any:
    """The JSON value of one line, or JsonlError naming file, line and what is wrong."""
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonlError(
            path, line.number, f"not valid UTF-8 (byte {exc.start + 1} of the line)"
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonlError(path, line.number, f"not JSON ({exc.msg} at column {exc.colno})") from exc


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every non-blank line; JsonlError on the first bad one."""
    with Path(path).open("rb") as handle:
        for line in iter_stream(handle):
            if line.data.strip():
                yield line.number, parse_line(line, path)


def loads_lines(text: str) -> list[Any]:
    """Values of JSON Lines text (the inverse of `dumps_lines`)."""
    return [value for _, value in _parse_all(text.encode("utf-8"))]


def _parse_all(data: bytes) -> Iterator[tuple[int, Any]]:
    for line in iter_lines(data):
        if line.data.strip():
            yield line.number, parse_line(line)
