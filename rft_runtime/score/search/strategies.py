"""The search strategies, pure over two functions: `generate` (the model) and `score` (the
guide). Every strategy returns `Params.candidates` finished solutions when it found that
many (padded with its best unfinished partial solutions otherwise) and never spends more
than its budget.

- sample: independent full completions in waves until the budget is spent; all returned
  (the equal-budget baseline; the scoring Job's `sample` keeps its own fixed-n path).
- bestOfN: the same completions, ranked by the guide; the top `candidates` returned.
- beam: step-level beam search: expand each of `beam_width` partial solutions by
  `expansion` steps, score them, keep the best `beam_width` unfinished; repeat.
- dvts: the budget split into `subtrees` independent greedy (width 1) step searches with
  `expansion` children each; kept answers are taken round-robin across subtrees (diverse).
- mcts: UCT selection over steps, `expansion` children per expanded node valued by the
  guide, one rollout to the end from the best new child, its value backed up the path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .budget import Budget, Grant
from .params import Params
from .tree import Node, Path, ranked, request_seed, uct


@dataclass(frozen=True)
class Ask:
    """One request: continue `prefix` with `n` choices, stopping at any of `stop`."""

    prefix: str
    n: int
    max_tokens: int
    stop: tuple[str, ...]
    seed: int | None


@dataclass(frozen=True)
class Reply:
    """Continuations in choice order, a stop string that ended one kept at its end."""

    texts: tuple[str, ...]
    finishes: tuple[str, ...]  # "stop" (a stop string or the model's end) or "length"
    tokens: int


Generate = Callable[[Ask], Awaitable[Reply]]
Score = Callable[[list[str]], Awaitable[list[float]]]


@dataclass(frozen=True)
class Candidate:
    text: str
    path: Path
    score: float
    finish: str
    rollout: bool = False


@dataclass
class SearchResult:
    candidates: list[Candidate]
    tokens: int
    completions: int
    requests: int
    nodes: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class _Search:
    def __init__(self, params: Params, prompt_id: str, generate: Generate, score: Score) -> None:
        self.p, self.prompt_id = params, prompt_id
        self.generate, self.score = generate, score
        self.requests = 0
        self.nodes: list[Node] = []

    async def _send(self, budget: Budget, grant: Grant, ask: Ask) -> Reply:
        self.requests += 1
        try:
            reply = await self.generate(ask)
        except BaseException:
            budget.settle(grant, 0, 0)
            raise
        budget.settle(grant, reply.tokens, len(reply.texts))
        return reply

    def _ask(self, parent: Node, grant: Grant, final: bool, kind: str) -> Ask:
        sep = self.p.step_separator
        return Ask(
            prefix=parent.text,
            n=grant.n,
            max_tokens=grant.max_tokens,
            stop=(self.p.end_of_solution,) if final else (sep,),
            seed=request_seed(self.p.seed, self.prompt_id, parent.path, kind),
        )

    def _child(self, parent: Node, index: int, text: str, finish: str, final: bool) -> Node:
        sep, end = self.p.step_separator, self.p.end_of_solution
        path = (*parent.path, index)
        if final:  # a full completion: it ended, by a stop, the model, or max_tokens
            return Node(path, parent.text + text, ended=True, finish=finish)
        if finish == "stop" and text.endswith(sep):
            blank = not text[: -len(sep)].strip() or (parent.text + text).endswith(end)
            return Node(path, parent.text + text, ended=blank, finish="stop")
        if finish == "stop":  # the model ended the solution
            return Node(path, parent.text + text, ended=True, finish="stop")
        return Node(path, parent.text + text, finish="length")  # step cut short: continue

    async def expand(
        self, parents: list[Node], budget: Budget, depth_limit: int, spare: int = 0
    ) -> list[Node]:
        """One wave: `expansion` children for each parent (best first) the budget allows,
        scored. `spare` finished solutions' worth of budget is left untouched."""
        choices = len(parents) * self.p.expansion
        cap = budget.share(choices, self.p.max_tokens, spare * self.p.max_tokens)
        asks: list[tuple[Node, Grant, bool]] = []
        for parent in parents:
            final = parent.depth + 1 >= depth_limit
            grant = budget.reserve(
                self.p.expansion,
                self.p.max_tokens if final else cap,
                spare * self.p.max_tokens,
                spare,
            )
            if grant is None:
                break
            asks.append((parent, grant, final))
        return await self._children(budget, asks, "step")

    async def finish(self, nodes: list[Node], budget: Budget) -> list[Node]:
        """One full completion from each node (best first) while the budget lasts."""
        asks: list[tuple[Node, Grant, bool]] = []
        for node in nodes:
            grant = budget.reserve(1, self.p.max_tokens)
            if grant is None:
                break
            asks.append((node, grant, True))
        return await self._children(budget, asks, "finish")

    async def _children(
        self, budget: Budget, asks: list[tuple[Node, Grant, bool]], kind: str
    ) -> list[Node]:
        replies = await asyncio.gather(
            *(self._send(budget, g, self._ask(n, g, final, kind)) for n, g, final in asks)
        )
        children: list[Node] = []
        for (parent, _, final), reply in zip(asks, replies, strict=True):
            for text, finish in zip(reply.texts, reply.finishes, strict=True):
                child = self._child(parent, len(parent.children), text, finish, final)
                parent.children.append(child)
                children.append(child)
        await self._value(children)
        return children

    async def _value(self, nodes: list[Node]) -> None:
        if nodes:
            for node, value in zip(nodes, await self.score([n.text for n in nodes]), strict=True):
                node.score = value
            self.nodes.extend(nodes)

    # -- strategies -------------------------------------------------------------------------

    async def independent(self, budget: Budget) -> list[Node]:
        """Full completions in waves (each request `expansion` choices) until spent."""
        root = Node((), "")
        made: list[Node] = []
        while True:
            asks: list[tuple[Grant, Ask]] = []
            while (grant := budget.reserve(self.p.expansion, self.p.max_tokens)) is not None:
                wave = (len(made) + sum(g.n for g, _ in asks),)
                seed = request_seed(self.p.seed, self.prompt_id, wave, "sample")
                end = (self.p.end_of_solution,)
                asks.append((grant, Ask("", grant.n, grant.max_tokens, end, seed)))
            if not asks:
                return made
            replies = await asyncio.gather(*(self._send(budget, g, a) for g, a in asks))
            for reply in replies:
                for text, finish in zip(reply.texts, reply.finishes, strict=True):
                    made.append(Node((len(made),), text, ended=True, finish=finish))
            root.children = made

    async def beam(self, budget: Budget, root: Node, width: int) -> None:
        """Step-level beam search below `root` (depth counted from it)."""
        limit = root.depth + self.p.max_depth
        frontier = [root]
        while frontier:
            children = await self.expand(frontier, budget, limit, spare=len(frontier))
            if not children:  # what is left finishes the best partial solutions
                await self.finish(frontier, budget)
                return
            frontier = ranked([c for c in children if not c.ended])[:width]

    async def mcts(self, budget: Budget) -> None:
        root = Node((), "", visits=1)
        limit = self.p.max_depth
        while not root.exhausted:
            trail = self._select(root)
            if trail is None:
                continue  # an exhausted node was marked; descend again
            leaf = trail[-1]
            children = await self.expand([leaf], budget, limit)
            if not children:
                return  # budget spent
            for child in children:
                child.visits, child.value_sum = 1, child.score
                child.exhausted = child.ended
            open_ = ranked([c for c in children if not c.ended])
            value = max(c.score for c in children)
            if open_:
                best = open_[0]
                rollout = await self._rollout(best, budget)
                if rollout is not None:
                    best.value_sum = value = rollout.score
            leaf.exhausted = all(c.exhausted for c in children)
            for node in trail:
                node.visits += 1
                node.value_sum += value

    def _select(self, root: Node) -> list[Node] | None:
        node, trail = root, [root]
        while node.children:
            options = [c for c in node.children if not c.exhausted]
            if not options:
                node.exhausted = True
                return None
            parent = node
            node = max(
                options, key=lambda c: (uct(parent, c, self.p.exploration), [-i for i in c.path])
            )
            trail.append(node)
        return trail

    async def _rollout(self, node: Node, budget: Budget) -> Node | None:
        grant = budget.reserve(1, self.p.max_tokens)
        if grant is None:
            return None
        seed = request_seed(self.p.seed, self.prompt_id, node.path, "rollout")
        ask = Ask(node.text, 1, grant.max_tokens, (self.p.end_of_solution,), seed)
        reply = await self._send(budget, grant, ask)
        rollout = Node(node.path, node.text + reply.texts[0], ended=True, rollout=True)
        rollout.finish = reply.finishes[0]
        await self._value([rollout])
        return rollout


def _pick(nodes: list[Node], k: int) -> list[Node]:
    """The best `k` finished solutions, padded with the best unfinished leaves."""
    finished = ranked([n for n in nodes if n.ended])
    if len(finished) >= k:
        return finished[:k]
    leaves = [n for n in nodes if not n.ended and not n.children]
    return finished + ranked(leaves)[: k - len(finished)]


def _round_robin(groups: list[list[Node]], k: int) -> list[Node]:
    """Best of each group first (groups in order of their best), then second best, ..."""
    lists = sorted((ranked(g) for g in groups if g), key=lambda g: (-g[0].score, g[0].path))
    out: list[Node] = []
    for rank in range(max((len(g) for g in lists), default=0)):
        out += [g[rank] for g in lists if rank < len(g)]
    return out[:k]


def _candidate(node: Node) -> Candidate:
    finish = node.finish if node.ended else "budget"
    return Candidate(node.text.rstrip(), node.path, node.score, finish, node.rollout)


async def search(params: Params, prompt_id: str, generate: Generate, score: Score) -> SearchResult:
    """Run `params.strategy` for one prompt."""
    run = _Search(params, prompt_id, generate, score)
    budget = Budget(params.token_budget, params.completion_budget)
    strategy = params.strategy
    made: list[Node] = []
    if strategy in ("sample", "bestOfN"):
        made = await run.independent(budget)
        if strategy == "sample":
            kept = made
        else:
            await run._value(made)
            kept = _pick(made, params.candidates)
    elif strategy == "beam":
        await run.beam(budget, Node((), ""), params.beam_width)
        kept = _pick(run.nodes, params.candidates)
    elif strategy == "dvts":
        parts = budget.split(params.subtrees)
        roots = [Node((i,), "") for i in range(params.subtrees)]
        await asyncio.gather(*(run.beam(b, r, 1) for b, r in zip(parts, roots, strict=True)))
        budget.absorb(parts)
        groups = [[n for n in run.nodes if n.path[0] == i and n.ended] for i in range(len(roots))]
        kept = _round_robin(groups, params.candidates)
        if len(kept) < params.candidates:
            rest = [n for n in _pick(run.nodes, len(run.nodes)) if n not in kept]
            kept += rest[: params.candidates - len(kept)]
    elif strategy == "mcts":
        await run.mcts(budget)
        kept = _pick(run.nodes, params.candidates)
    else:
        raise ValueError(
            f"sampler.strategy {strategy!r} is not sample, bestOfN, beam, dvts or mcts"
        )
    return SearchResult(
        [_candidate(n) for n in kept],
        tokens=budget.used_tokens,
        completions=budget.used_completions,
        requests=run.requests,
        nodes=len(made) or len(run.nodes),
    )
