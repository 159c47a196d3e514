"""Check prompt files before any work uses them: every line, every problem, `file:line: field:
problem`. The scoring Job runs this before it contacts a sampler (failing with reason
InvalidData), and `rft validate --data` runs the same checks on this machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config.jobs import ScoreJobConfig
from .jsonl import JsonlError, Line, iter_stream, parse_line

SHOWN_PROBLEMS = 10  # the first N problems go into the failure message


@dataclass(frozen=True)
class DataProblem:
    """One thing wrong with a data file; `line` is the 1-based line (row for non-JSONL)."""

    path: str
    line: int | None
    field: str
    problem: str
    row_word: str = ""  # "" for JSONL line numbers, "row " for Parquet/dataset rows

    def render(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.row_word}{self.line}"
        return f"{where}: {self.field}: {self.problem}"


@dataclass(frozen=True)
class FileCheck:
    """What one prompt file must hold: which fields every row needs, and limits."""

    path: str
    prompt_field: str
    answer_field: str
    id_field: str | None = None
    extra_fields: tuple[str, ...] = ()  # rewards' own answerField columns
    max_row_bytes: int | None = None

    @property
    def required(self) -> tuple[str, ...]:
        names = [self.prompt_field, self.answer_field, *self.extra_fields]
        if self.id_field:
            names.append(self.id_field)
        return tuple(dict.fromkeys(names))


class InvalidData(Exception):
    """Data files with problems; the message lists the first few."""

    def __init__(self, problems: list[DataProblem]) -> None:
        super().__init__(summarize(problems))
        self.problems = problems


def summarize(problems: list[DataProblem], shown: int = SHOWN_PROBLEMS) -> str:
    noun = "problem" if len(problems) == 1 else "problems"
    lines = [p.render() for p in problems[:shown]]
    more = len(problems) - shown
    tail = f"\n... and {more} more" if more > 0 else ""
    files = sorted({p.path for p in problems})
    return f"{len(problems)} data {noun} in {', '.join(files)}:\n" + "\n".join(lines) + tail


def checks_for(config: ScoreJobConfig) -> list[FileCheck]:
    """The files one scoring Job reads, with the fields its rewards need."""
    extra = tuple(r.answer_field for r in config.rewards if r.answer_field)
    sources = [config.train] if config.train is not None else []
    if config.evaluation is not None:
        sources += [s.source for s in config.evaluation.sets]
    checks = [
        FileCheck(
            path=s.path,
            prompt_field=s.prompt_field,
            answer_field=s.answer_field,
            id_field=s.id_field,
            extra_fields=extra,
            max_row_bytes=s.max_row_bytes,
        )
        for s in sources
    ]
    return list({c.path: c for c in checks}.values())


def check_files(checks: Iterable[FileCheck]) -> list[DataProblem]:
    found: list[DataProblem] = []
    for check in checks:
        found += check_file(check)
    return found


def check_file(check: FileCheck) -> list[DataProblem]:
    """Every problem of one file (empty: every row is usable)."""
    path = Path(check.path)
    if not path.exists():
        return [_whole(check, "does not exist; check the URI and that the claim holds it")]
    if path.is_dir() or path.suffix == ".parquet":
        return _check_rows(check, _table_rows(path), row_word="row ")
    try:
        handle = path.open("rb")
    except OSError as exc:
        return [_whole(check, f"cannot be read ({exc.strerror})")]
    with handle:
        return _check_rows(check, _jsonl_rows(check, iter_stream(handle)), row_word="")


_Row = tuple[int, Any, "DataProblem | None"]


def _jsonl_rows(check: FileCheck, lines: Iterator[Line]) -> Iterator[_Row]:
    for line in lines:
        limit = check.max_row_bytes
        if limit is not None and len(line.data) > limit:
            yield (
                line.number,
                None,
                _at(
                    check,
                    line.number,
                    "(line)",
                    f"{len(line.data)} bytes, over the limit of {limit} bytes; shorten the row or "
                    "raise data.maxRowBytes",
                ),
            )
            continue
        if not line.data.strip():
            continue
        try:
            yield line.number, parse_line(line, check.path), None
        except JsonlError as exc:
            yield line.number, None, _at(check, line.number, "(line)", exc.problem)


def _table_rows(path: Path) -> Iterator[_Row]:
    from .score.data import raw_rows  # Parquet / datasets: optional dependencies

    for index, row in enumerate(raw_rows(path), 1):
        yield index, row, None


def _check_rows(check: FileCheck, rows: Iterator[_Row], row_word: str) -> list[DataProblem]:
    found: list[DataProblem] = []
    first_seen: dict[str, int] = {}
    count = 0
    for number, row, problem in rows:
        count += 1
        if problem is not None:
            found.append(problem)
            continue
        found += _row_problems(check, number, row, first_seen, row_word)
    if count == 0:
        found.append(
            _whole(
                check,
                "has no rows; write one JSON object per line, e.g. "
                f'{{"{check.prompt_field}": "What is 2 + 2?", "{check.answer_field}": "4"}}',
            )
        )
    return found


def _row_problems(
    check: FileCheck, number: int, row: Any, first_seen: dict[str, int], row_word: str
) -> list[DataProblem]:
    def at(field: str, problem: str) -> DataProblem:
        return _at(check, number, field, problem, row_word)

    if not isinstance(row, dict):
        return [at("(line)", f"expected a JSON object, got {_kind(row)}; write {{...}} per line")]
    found = []
    fields = ", ".join(sorted(map(str, row))) or "none"
    for name in check.required:
        if name not in row:
            found.append(at(name, f"missing (the row has: {fields}); {_fix_for(check, name)}"))
    prompt = row.get(check.prompt_field)
    if check.prompt_field in row and not (isinstance(prompt, str) and prompt.strip()):
        found.append(at(check.prompt_field, f"expected non-empty text, got {_kind(prompt)}"))
    if check.answer_field in row and row[check.answer_field] is None:
        found.append(at(check.answer_field, "is null; give the reference answer"))
    if check.id_field and check.id_field in row:
        value = row[check.id_field]
        if not isinstance(value, str | int) or isinstance(value, bool):
            found.append(at(check.id_field, f"expected a string or integer, got {_kind(value)}"))
        elif str(value) in first_seen:
            found.append(
                at(
                    check.id_field,
                    f"duplicate id {str(value)!r} (first on {row_word or 'line '}"
                    f"{first_seen[str(value)]}); ids must be unique",
                )
            )
        else:
            first_seen[str(value)] = number
    return found


def _fix_for(check: FileCheck, name: str) -> str:
    if name == check.prompt_field:
        return "add it or set data.promptField to the column holding the prompt"
    if name == check.answer_field:
        return "add it or set data.answerField to the column holding the reference answer"
    if name == check.id_field:
        return "add it to every row or remove data.idField (ids default to the row number)"
    return "add it, or change the answerField of the reward that reads it"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string" if value.strip() else "an empty string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _at(check: FileCheck, number: int, field: str, problem: str, row_word: str = "") -> DataProblem:
    return DataProblem(check.path, number, field, problem, row_word)


def _whole(check: FileCheck, problem: str) -> DataProblem:
    return DataProblem(check.path, None, "(file)", problem)
