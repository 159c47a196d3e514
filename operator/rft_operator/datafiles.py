"""`rft validate --data`: the scoring Job's data checks, run here on the files a manifest
names (each PVC bound to a folder as `rft run --local` binds it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rft_runtime.config.paths import PVC_MOUNT_ROOT
from rft_runtime.datacheck import DataProblem, check_files, checks_for

from .api import parse_spec
from .jobconfigs import score_config
from .kubelet.container import rewriter
from .layout import cluster_layout


def data_problems(
    document: dict[str, Any], manifest_dir: Path, claims: dict[str, str]
) -> list[DataProblem]:
    """Every problem of every data and evaluation file of a valid RFTRun document."""
    from .local import local_claims

    spec = parse_spec(document["spec"])
    name = str(document["metadata"]["name"])
    layout = cluster_layout(name, "default", spec)
    bound = local_claims(spec, manifest_dir / ".rft-validate", manifest_dir, claims)
    to_local = rewriter({f"{PVC_MOUNT_ROOT}/{c}": folder for c, folder in bound.items()}, {})
    # scoring Job 0 samples the training file (and evaluates the base model when asked);
    # scoring Job 1 evaluates every set: together they read every file of the run
    configs = [score_config(spec, name, k, layout) for k in range(min(2, spec.iterations.max + 1))]
    checks = {c.path: c for config in configs for c in checks_for(config)}
    return check_files(dataclasses.replace(c, path=to_local(c.path)) for c in checks.values())
