"""type: normalized — equal after ignoring case, whitespace and punctuation."""

from __future__ import annotations

import re
import string
import unicodedata

from ..config.spec import RewardSpec
from .base import RewardResult

_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Unicode NFKC, lower case, no ASCII punctuation, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCT)
    return re.sub(r"\s+", " ", text).strip()


def normalized_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    return RewardResult(1.0 if normalize(completion) == normalize(answer) else 0.0)
