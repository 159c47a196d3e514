"""`rft validate --data`: the scoring Job's data checks, run here on the files a manifest
names (pvc:// resolved as `rft run --local` resolves it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rft_runtime.datacheck import DataProblem, check_files, checks_for

from .api import parse_spec
from .jobconfigs import score_config


def data_problems(
    document: dict[str, Any], manifest_dir: Path, claims: dict[str, str]
) -> list[DataProblem]:
    """Every problem of every data and evaluation file of a valid RFTRun document."""
    from .local import local_layout

    spec = parse_spec(document["spec"])
    name = str(document["metadata"]["name"])
    layout = local_layout(manifest_dir / ".rft-validate", manifest_dir, claims)
    # scoring Job 0 samples the training file (and evaluates the base model when asked);
    # scoring Job 1 evaluates every set: together they read every file of the run
    configs = [score_config(spec, name, k, layout) for k in range(min(2, spec.iterations.max + 1))]
    checks = {c.path: c for config in configs for c in checks_for(config)}
    return check_files(checks.values())
