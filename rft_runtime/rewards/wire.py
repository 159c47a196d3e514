"""Parent side of the sandbox's data channel: decode the runner's tagged JSON values
(`code_child.encode`) into plain Python values, or fail. Nothing is unpickled, nothing
from the program is called; a value that does not decode makes its test case fail."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class BadValue(ValueError):
    """The program sent something that is not a well-formed value."""


def decode(data: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise BadValue("value nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is not dict or len(data) != 1:
        raise BadValue(f"not a tagged value: {str(data)[:80]}")
    ((tag, body),) = data.items()
    try:
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "c" and type(body) is list and len(body) == 2:
            return complex(float(body[0]), float(body[1]))
        if type(body) is not list:
            raise BadValue(f"tag {tag!r} needs a list")
        items = [decode(item, depth + 1) for item in body] if tag != "d" else body
        if tag == "l":
            return items
        if tag == "t":
            return tuple(items)
        if tag == "s":
            return set(items)
        if tag == "f":
            return frozenset(items)
        if tag == "d":
            pairs = [(decode(k, depth + 1), decode(v, depth + 1)) for k, v in body]
            return dict(pairs)
    except (TypeError, ValueError) as exc:  # unhashable set items, malformed pairs, bad hex
        raise BadValue(f"malformed {tag!r} value: {exc}") from exc
    raise BadValue(f"unknown tag {tag!r}")


def parse_frame(line: bytes) -> dict[str, Any] | None:
    """One line of the runner's output as a frame with an int `i`, or None."""
    try:
        frame = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if type(frame) is not dict or type(frame.get("i")) is not int:
        return None
    return frame
