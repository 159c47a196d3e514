"""Make the arithmetic data of examples/arith-smollm2.yaml (fixed seed, exact answers).

train: 300 two-digit additions; train-600: those and 300 more; train-3000: those 600 and
2,400 more (what examples/arith-smollm2.yaml trains on, 1,000 per iteration); eval: 200
other two-digit additions (the primary set, the same whichever train file is used); guard:
200 multiplications of a digit by a number up to 30 (a different operation: the regression
guard). No prompt appears in two splits. Run: python examples/make_arith_data.py [OUT_DIR]
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 20261125
OUT = Path(__file__).resolve().parent / "data" / "arith"


def additions(rng: random.Random) -> list[tuple[int, int]]:
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    rng.shuffle(pairs)
    return pairs


def rows(pairs: list[tuple[int, int]], op: str, prefix: str) -> list[dict[str, str]]:
    out = []
    for i, (a, b) in enumerate(pairs):
        value = a + b if op == "+" else a * b
        out.append(
            {"id": f"{prefix}-{i:04d}", "prompt": f"What is {a} {op} {b}?", "answer": str(value)}
        )
    return out


def make(out: Path = OUT) -> dict[str, int]:
    rng = random.Random(SEED)
    pairs = additions(rng)
    products = [(a, b) for a in range(2, 10) for b in range(2, 31)]
    rng.shuffle(products)
    guard = products[:200]
    splits = {
        "train": rows(pairs[:300], "+", "train"),
        "train-600": rows(pairs[:300] + pairs[500:800], "+", "train"),
        "train-3000": rows(pairs[:300] + pairs[500:3200], "+", "train"),
        "eval": rows(pairs[300:500], "+", "eval"),
        "guard": rows(guard, "*", "guard"),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, items in splits.items():
        text = "".join(json.dumps(item) + "\n" for item in items)
        (out / f"{name}.jsonl").write_text(text, encoding="utf-8")
    return {name: len(items) for name, items in splits.items()}


if __name__ == "__main__":
    print(make(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
