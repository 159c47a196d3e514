"""String graders against the reference answer:

- type contains: the reference occurs in the completion (`ignoreCase` optional);
- type fuzzy: rapidfuzz's normalized Indel similarity (0..1) of the normalized texts;
- type bleu: sentence BLEU-4 with add-one smoothing of n-gram precisions (n > 1) and the
  brevity penalty, on lower-cased word tokens;
- type rouge: ROUGE-L F1 (longest common subsequence of word tokens).
"""

from __future__ import annotations

import math
import re
from collections import Counter

from rapidfuzz import fuzz

from ..config.spec import RewardSpec
from .base import RewardResult, zero
from .normalized import normalize

_TOKEN = re.compile(r"\w+|[^\w\s]")
MAX_LCS_TOKENS = 512  # ROUGE-L is quadratic; longer texts are cut to this many tokens


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def contains_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    want = answer.strip()
    if not want:
        return zero("empty reference answer")
    if spec.ignore_case:
        return RewardResult(1.0 if want.casefold() in completion.casefold() else 0.0)
    return RewardResult(1.0 if want in completion else 0.0)


def fuzzy_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    return RewardResult(fuzz.ratio(normalize(completion), normalize(answer)) / 100.0)


def _ngrams(words: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def bleu(candidate: list[str], reference: list[str], max_n: int = 4) -> float:
    """Sentence BLEU with add-one smoothing for n > 1 (Lin & Och 2004) and brevity penalty."""
    if not candidate or not reference:
        return 0.0
    log_precisions = []
    for n in range(1, max_n + 1):
        cand, ref = _ngrams(candidate, n), _ngrams(reference, n)
        overlap = sum((cand & ref).values())
        total = max(sum(cand.values()), 0)
        if n == 1:
            if overlap == 0:
                return 0.0
            log_precisions.append(math.log(overlap / total))
        else:
            log_precisions.append(math.log((overlap + 1) / (total + 1)))
    brevity = min(0.0, 1.0 - len(reference) / len(candidate))
    return math.exp(brevity + sum(log_precisions) / max_n)


def rouge_l(candidate: list[str], reference: list[str]) -> float:
    """ROUGE-L F1 from the longest common subsequence."""
    candidate, reference = candidate[:MAX_LCS_TOKENS], reference[:MAX_LCS_TOKENS]
    if not candidate or not reference:
        return 0.0
    previous = [0] * (len(reference) + 1)
    for word in candidate:
        current = [0]
        for j, ref_word in enumerate(reference):
            current.append(
                previous[j] + 1 if word == ref_word else max(previous[j + 1], current[j])
            )
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def bleu_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    return RewardResult(bleu(tokens(completion), tokens(answer)))


def rouge_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    return RewardResult(rouge_l(tokens(completion), tokens(answer)))
