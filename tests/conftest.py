"""Shared fixtures: the repository root and the example manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture
def minimal() -> dict[str, Any]:
    return copy.deepcopy(load_yaml(ROOT / "examples" / "minimal.yaml"))


@pytest.fixture
def complete() -> dict[str, Any]:
    return copy.deepcopy(load_yaml(ROOT / "examples" / "complete.yaml"))
