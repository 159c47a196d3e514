"""The runner inside the sandbox (`python -I -S -c <this file>`; standard library only).

It executes the program and sends back data, never a verdict: for assert tests the JSON
values of the test's expressions that need the program (the parent holds the expected
values and compares them itself), for input/output tests the program's stdout. One JSON
line per test on stdout: {"i": index, "v": [values]} / {"i": index, "out": text} /
{"i": index, "e": error}. Containers are tagged so tuples, sets and dicts survive JSON.
"""

import io
import json
import sys
from typing import Any

MAX_DEPTH = 64
MAX_TEXT = 1 << 18


def encode(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (list, tuple, set, frozenset):
        tags: dict[type, str] = {list: "l", tuple: "t", set: "s", frozenset: "f"}
        tag = tags[kind]
        return {tag: [encode(item, depth + 1) for item in value]}
    if kind is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind in (bytes, bytearray):
        return {"b": bytes(value).hex()}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    for base in (bool, int, float, str):  # subclasses (enums, ...) as their base value
        if isinstance(value, base):
            return encode(base(value), depth + 1)
    raise TypeError(f"a {kind.__name__} value cannot be sent back")


def describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:200]
    except BaseException:
        return "an exception that cannot be printed"


def run_one(code: Any, kind: str, test: Any) -> dict[str, Any]:
    if kind == "io":
        sys.stdin = io.StringIO(test)
        sys.stdout = captured = io.StringIO()
        try:
            exec(code, {"__name__": "__main__"})
        except SystemExit as stop:
            if stop.code not in (None, 0):
                raise
        return {"out": captured.getvalue()[:MAX_TEXT]}
    scope = {"__name__": "__main__"}
    exec(code, scope)
    if test["setup"]:
        exec(compile(test["setup"], "<test>", "exec"), scope)
    return {"v": [encode(eval(compile(e, "<test>", "eval"), scope)) for e in test["holes"]]}


def main() -> None:
    job = json.loads(sys.stdin.read())
    out = sys.stdout
    sys.stdin = io.StringIO("")
    sys.stdout = io.StringIO()
    setattr(sys, "__stdout__", sys.stdout)  # noqa: B010 - final in typeshed
    code = compile(job["code"], "<solution>", "exec")
    for index, test in enumerate(job["tests"]):
        try:
            frame = {"i": index, **run_one(code, job["kind"], test)}
            line = json.dumps(frame)
        except BaseException as exc:
            line = json.dumps({"i": index, "e": describe(exc)})
        finally:
            sys.stdout = io.StringIO()
        out.write(line + "\n")
        out.flush()


if __name__ == "__main__":
    main()
