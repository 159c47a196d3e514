"""The pure parts of bench/bench_hint_filters.py: which rows each training-data variant keeps."""

from __future__ import annotations

from typing import Any

from bench.bench_hint_filters import capped, cut_before_answer, hinted_kept, key, variants


def row(pid: str, text: str) -> dict[str, Any]:
    return {"prompt_id": pid, "messages": [], "completion": text, "reward": 1.0}


SFT = [
    row("a", "12 + 30 = 42"),  # the policy's own answer
    row("b", "Smile! 57"),  # hinted
    row("b", "So 20 + 37 = 57"),  # hinted
    row("c", "99"),  # hinted
]
SAMPLES = [
    {"prompt_id": "a", "text": "12 + 30 = 42", "kept": True},
    {"prompt_id": "a", "text": "40", "kept": False},
    {"prompt_id": "b", "text": "Smile! 57", "kept": True, "round": "hint"},
    {"prompt_id": "b", "text": "So 20 + 37 = 57", "kept": True, "round": "hint"},
    {"prompt_id": "b", "text": "58", "kept": False, "round": "hint"},
    {"prompt_id": "c", "text": "99", "kept": True, "round": "hint"},
]


def test_variants_drop_cap_or_verify_only_the_hinted_rows() -> None:
    hinted = hinted_kept(SAMPLES)
    assert hinted == {key(SFT[1]), key(SFT[2]), key(SFT[3])}
    out = variants(SFT, hinted, verified={key(SFT[2])})
    assert out["all"] == SFT
    assert out["nohint"] == [SFT[0]]
    assert out["cap1"] == [SFT[0], SFT[1], SFT[3]]  # the first hinted row of each prompt
    assert out["verified"] == [SFT[0], SFT[2]]
    assert capped(SFT, hinted, 2) == SFT


def test_a_completion_is_cut_before_the_last_occurrence_of_its_answer() -> None:
    assert cut_before_answer("20 + 37 = 57, so 57", "57") == "20 + 37 = 57, so "
    assert cut_before_answer("no number here", "57") is None
