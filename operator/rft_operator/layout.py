"""Where a run's files are, as the jobs see them (pod mounts, or local folders).

The operator and the local executor plan with the same layout — the paths inside the
pods — since both run the same pods (locally, the process kubelet maps the mounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from rft_runtime.config.paths import (
    PVC_MOUNT_ROOT,
    SAMPLER_PORT,
    STORAGE_MOUNT,
    IterationPaths,
    RunPaths,
)

from .api import RFTRunSpec


class UnsupportedUri(ValueError):
    """A URI scheme this layout cannot reach (e.g. s3:// without a downloader)."""


@dataclass(frozen=True)
class Layout:
    """How URIs map to local paths, and how jobs reach the sampler."""

    run_dir: str
    storage_claim: str | None = None  # pvc://<this claim>/x lives under storage_root
    storage_root: str = STORAGE_MOUNT
    pvc_root: str = PVC_MOUNT_ROOT
    sampler_url_template: str = "http://{name}:" + str(SAMPLER_PORT) + "/v1"

    def resolve(self, uri: str) -> str:
        """The local path of a `pvc://` or `file://` URI."""
        scheme, _, rest = uri.partition("://")
        if scheme == "file":
            return "/" + rest.lstrip("/")
        if scheme == "pvc":
            claim, _, path = rest.partition("/")
            if claim == self.storage_claim:
                return str(PurePosixPath(self.storage_root) / path)
            return str(PurePosixPath(self.pvc_root) / claim / path)
        raise UnsupportedUri(
            f"{uri}: {scheme}:// is not supported yet; copy the files to a PVC and use "
            "pvc://<claim>/<path>"
        )

    def uri_of(self, path: str) -> str:
        """The URI reported in status for a path under the run directory."""
        if self.storage_claim is not None and path.startswith(self.storage_root + "/"):
            return f"pvc://{self.storage_claim}/{path[len(self.storage_root) + 1 :]}"
        return f"file://{path}"

    def iteration(self, index: int) -> IterationPaths:
        """The files of iteration `index` (the runtime's own path names)."""
        return RunPaths(self.run_dir).iteration(index)

    def sampler_url(self, name: str) -> str:
        return self.sampler_url_template.format(name=name)


def cluster_layout(run: str, namespace: str, spec: RFTRunSpec) -> Layout:
    """The layout inside the pods the operator creates."""
    parts = [STORAGE_MOUNT] + ([spec.storage.sub_path.strip("/")] if spec.storage.sub_path else [])
    return Layout(
        run_dir="/".join([*parts, run]),
        storage_claim=spec.storage.pvc,
        sampler_url_template="http://{name}." + namespace + ".svc:" + str(SAMPLER_PORT) + "/v1",
    )


def claims_used(spec: RFTRunSpec) -> list[str]:
    """Read-only PVCs the pods must mount besides the run storage (model, data, eval sets)."""
    uris = [spec.model.uri, spec.data.train]
    if spec.evaluation:
        uris += [s.uri for s in spec.evaluation.sets]
    uris += [r.model for r in spec.rewards if r.model]
    claims = {u.split("://", 1)[1].split("/", 1)[0] for u in uris if u.startswith("pvc://")}
    claims.discard(spec.storage.pvc)
    return sorted(claims)
