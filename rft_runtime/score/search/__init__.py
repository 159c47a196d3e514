"""Search strategies of the scoring Job (sampler.strategy bestOfN, beam, dvts, mcts).

The core (`params`, `budget`, `tree`, `strategies`) is pure: it sees the model only as an
async *generator function* (prefix, n, stop, seed -> continuations) and the guide only as
an async *score function* (partial solutions -> values), so it is tested on its own. The
edges bind those to the sampler server (`endpoint`) and to the progress log (`searchpass`).
"""

from __future__ import annotations

from .params import Params, resolve
from .strategies import Ask, Candidate, Reply, SearchResult, search

__all__ = ["Ask", "Candidate", "Params", "Reply", "SearchResult", "resolve", "search"]
