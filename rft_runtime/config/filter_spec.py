"""The filter section of an RFTRun spec: which samples a scoring Job keeps (read by the
operator's API and, in the job config, by `rft_runtime.filters`)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .base import ApiModel, cel, rules


class NearDuplicateSpec(ApiModel):
    """Near-duplicate removal among one prompt's completions (the first of a cluster stays)."""

    method: Literal["shingles", "embedding"] = Field(
        "shingles",
        description="shingles: Jaccard similarity of word n-grams; embedding: cosine "
        "similarity of sentence embeddings (bundled all-MiniLM-L6-v2).",
    )
    threshold: float = Field(
        0.8, gt=0, le=1, description="Drop a completion this similar to an earlier kept one."
    )
    shingle_size: int = Field(3, ge=1, le=16, description="Words per shingle (method shingles).")


LanguageCode = Literal[
    "af",
    "ar",
    "az",
    "be",
    "bg",
    "bn",
    "bs",
    "ca",
    "cs",
    "cy",
    "da",
    "de",
    "el",
    "en",
    "eo",
    "es",
    "et",
    "eu",
    "fa",
    "fi",
    "fr",
    "ga",
    "gu",
    "he",
    "hi",
    "hr",
    "hu",
    "hy",
    "id",
    "is",
    "it",
    "ja",
    "ka",
    "kk",
    "ko",
    "la",
    "lg",
    "lt",
    "lv",
    "mi",
    "mk",
    "mn",
    "mr",
    "ms",
    "nb",
    "nl",
    "nn",
    "pa",
    "pl",
    "pt",
    "ro",
    "ru",
    "sk",
    "sl",
    "sn",
    "so",
    "sq",
    "sr",
    "st",
    "sv",
    "sw",
    "ta",
    "te",
    "th",
    "tl",
    "tn",
    "tr",
    "ts",
    "uk",
    "ur",
    "vi",
    "xh",
    "yo",
    "zh",
    "zu",
]
"""ISO 639-1 codes of the languages the language filter (lingua) detects."""


class LanguageSpec(ApiModel):
    """Keep completions detected as one of these languages."""

    allowed: list[LanguageCode] = Field(
        min_length=1,
        max_length=75,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="ISO 639-1 codes, e.g. [en] or [en, de].",
    )
    min_chars: int = Field(
        20, ge=0, le=100000, description="Shorter completions are kept without detection."
    )


class LengthSpec(ApiModel):
    """Length limits of a kept completion (characters and whitespace-separated words)."""

    min_chars: int | None = Field(None, ge=0, description="Drop completions shorter than this.")
    max_chars: int | None = Field(None, ge=1, description="Drop completions longer than this.")
    min_words: int | None = Field(None, ge=0, description="Drop completions with fewer words.")
    max_words: int | None = Field(None, ge=1, description="Drop completions with more words.")


class FilterSpec(ApiModel):
    """Which scored samples become training data."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "!has(self.length) || !has(self.length.minChars) || "
                "!has(self.length.maxChars) || self.length.minChars <= self.length.maxChars",
                "filter.length.minChars is above filter.length.maxChars; lower minChars or "
                "raise maxChars",
                ".length.minChars",
            ),
            cel(
                "!has(self.length) || !has(self.length.minWords) || "
                "!has(self.length.maxWords) || self.length.minWords <= self.length.maxWords",
                "filter.length.minWords is above filter.length.maxWords; lower minWords or "
                "raise maxWords",
                ".length.minWords",
            ),
        )
    )

    min_reward: float = Field(1.0, description="Keep samples whose total reward is at least this.")
    min_reward_schedule: list[float] | None = Field(
        None,
        max_length=100,
        description="Per-iteration minReward (one entry per iteration; replaces minReward).",
    )
    max_per_prompt: int = Field(2, ge=1, le=256, description="Keep at most this many per prompt.")
    prefer: Literal["first", "shortest"] = Field(
        "first",
        description="Which of a prompt's equally rewarded samples maxPerPrompt keeps: first "
        "(sampling order) or shortest (fewest characters: the policy learns to answer "
        "without padding, so later iterations sample and train fewer tokens).",
    )
    drop_easy_above: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Drop prompts whose pass rate is at least this (1.0: drop all-correct ones).",
    )
    drop_truncated: bool = Field(
        True,
        description="Drop completions the sampler cut at sampler.maxTokens (finish reason "
        "length): an unfinished answer is no demonstration, whatever number the reward read "
        "in it. false keeps them; they are trained without an end-of-sequence token.",
    )
    dedup: bool = Field(True, description="Drop duplicate completions of the same prompt.")
    rejected: Literal["none", "lowest"] = Field(
        "none", description="Also keep a rejected sample per chosen one (needed by DPO)."
    )
    near_duplicates: NearDuplicateSpec | None = Field(
        None, description="Also drop near-duplicate completions of the same prompt."
    )
    language: LanguageSpec | None = Field(
        None, description="Drop completions not written in one of these languages."
    )
    length: LengthSpec | None = Field(None, description="Drop completions too short or too long.")
