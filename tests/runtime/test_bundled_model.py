"""`rft models prepare` on a fresh cache: the conversion of the model shipped in a wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT


def prepare(cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rft_operator.cli", "models", "prepare"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "RFT_CACHE": str(cache)},
    )


@pytest.mark.slow
def test_prepare_prints_only_the_model_path_on_first_use_and_after(tmp_path: Path) -> None:
    """Scripts read the path from stdout (`$(rft models prepare)`): whatever the libraries
    used by the conversion log on the way must not land there."""
    target = tmp_path / "models" / "smollm2-135m-instruct"
    first = prepare(tmp_path)
    assert first.stdout.splitlines() == [str(target)], first.stdout
    assert (target / "config.json").is_file()
    assert (target / "model.safetensors").is_file()
    assert prepare(tmp_path).stdout.splitlines() == [str(target)]
