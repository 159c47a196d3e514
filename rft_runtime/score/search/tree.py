"""The search tree: nodes are partial solutions; a node's path names it (child indices from
the root), and the path plus the prompt seeds every request made from it."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

Path = tuple[int, ...]


@dataclass(eq=False)
class Node:
    path: Path
    text: str  # the partial solution: every step from the root, separators included
    score: float = 0.0  # the guide's value of `text`
    ended: bool = False  # the solution is complete (the model stopped, or a blank step)
    finish: str = "budget"  # stop | length | depth | budget: why it ended (or did not)
    rollout: bool = False  # an MCTS rollout to the end, not a single step
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    exhausted: bool = False  # MCTS: nothing below can be expanded any more

    @property
    def depth(self) -> int:
        return len(self.path)

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else self.score


def request_seed(base: int | None, prompt_id: str, path: Path, kind: str) -> int | None:
    """A stable per-request seed (the same search repeats its requests exactly)."""
    if base is None:
        return None
    key = f"{base}|{prompt_id}|{'.'.join(map(str, path))}|{kind}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") & 0x7FFFFFFF


def uct(parent: Node, child: Node, exploration: float) -> float:
    """Upper confidence bound for trees: mean value plus an exploration bonus."""
    bonus = exploration * math.sqrt(math.log(max(parent.visits, 1)) / max(child.visits, 1))
    return child.value + bonus


def ranked(nodes: list[Node]) -> list[Node]:
    """Best score first; ties keep tree order (the path), so ranking is deterministic."""
    return sorted(nodes, key=lambda n: (-n.score, n.path, n.rollout))
