"""Drop completions written in a language other than the allowed ones (lingua, low-accuracy
mode: ~100 MB, fast). Completions shorter than `minChars`, or where no language is
detected (formulas, code), are kept: there is nothing to judge."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..config.filter_spec import LanguageSpec
from .base import Sample


class UnknownLanguage(ValueError):
    """A code in filter.language.allowed that lingua does not know."""


@lru_cache(maxsize=1)
def detector() -> Any:
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()


def allowed_codes(spec: LanguageSpec) -> frozenset[str]:
    from lingua import IsoCode639_1

    codes = set()
    for code in spec.allowed:
        if not hasattr(IsoCode639_1, code.upper()):
            raise UnknownLanguage(
                f"filter.language.allowed: {code!r} is not an ISO 639-1 code lingua detects; "
                "use codes such as en, de, fr, zh"
            )
        codes.add(code.upper())
    return frozenset(codes)


def language_of(text: str) -> str | None:
    found = detector().detect_language_of(text)
    return None if found is None else str(found.iso_code_639_1.name)


def in_language(group: list[Sample], spec: LanguageSpec) -> list[Sample]:
    allowed = allowed_codes(spec)
    kept = []
    for sample in group:
        if len(sample.completion.strip()) < spec.min_chars:
            kept.append(sample)
            continue
        code = language_of(sample.completion)
        if code is None or code in allowed:
            kept.append(sample)
    return kept
