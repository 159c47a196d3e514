"""`rft run FILE --local`: the operator's reconcile pass and the process kubelet on one
machine, with a file-backed object store in place of the API server.

Each step is a cluster's loop in miniature: the kubelet runs and observes the pods of
the Deployments and Jobs in the store, then `reconcile_run` — the very pass the operator
runs against an API server — plans the next step and writes the same objects the
operator would create. Everything lives in a work directory (the store, every pod's log
and termination message, the run storage), so running the same command again resumes: the
new kubelet first stops whatever a killed earlier run left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rft_runtime.bundled_models import cache_root
from rft_runtime.config.live import LiveProgress
from rft_runtime.config.paths import (
    OPS_CACHE,
    STORAGE_MOUNT,
    TORCHINDUCTOR_CACHE,
    VLLM_CACHE,
    RunPaths,
)
from rft_runtime.files import atomic_write_json
from rft_runtime.train.ops_cache import copy_builds, copy_compiled

from . import api
from .client import NotFound
from .conditions import now
from .console import Console
from .kubelet import Node, ProcessKubelet
from .layout import claims_used
from .local_store import LocalStore
from .reconcile import RETRY_ANNOTATION, known_status, reconcile_run

STATUS_FILE = "status.json"
STORE_FILE = "cluster/objects.json"
# The host environment a pod process may see (a container sees its image's, not the
# caller's: secrets in the caller's environment stay out of the pods).
IMAGE_ENV = (
    "PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "LANG",
    "LC_ALL",
    "TZ",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "RFT_CACHE",
)
TERMINAL = ("Succeeded", "Failed")


# the run storage's ops cache, relative to the claim's folder
OPS_CACHE_IN_STORAGE = Path(OPS_CACHE).relative_to(STORAGE_MOUNT).parts
KERNELS_IN_STORAGE = Path(TORCHINDUCTOR_CACHE).relative_to(STORAGE_MOUNT).parts
VLLM_CACHE_IN_STORAGE = Path(VLLM_CACHE).relative_to(STORAGE_MOUNT).parts


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def local_claims(
    spec: api.RFTRunSpec, workdir: Path, manifest_dir: Path, given: dict[str, str]
) -> dict[str, str]:
    """Folders bound to the run's PVCs: `--pvc CLAIM=DIR` first; the run storage claim is
    `<workdir>/storage`; `models` is the model cache (`rft models prepare`); any other
    claim is the folder of that name next to the manifest."""
    claims = {spec.storage.pvc: str((workdir / "storage").resolve())}
    for claim in claims_used(spec):
        if claim == "models":
            claims[claim] = str(cache_root() / "models")
        elif (manifest_dir / claim).is_dir():
            claims[claim] = str((manifest_dir / claim).resolve())
    claims.update({k: str(Path(v).resolve()) for k, v in given.items()})
    return claims


def secrets_from(folder: Path | None) -> Callable[[str, str], str | None]:
    """Secrets as files: <folder>/<secret name>/<key> (like a mounted Secret volume)."""

    def read(name: str, key: str) -> str | None:
        if folder is None:
            return None
        path = folder / name / key
        return path.read_text(encoding="utf-8").strip() if path.is_file() else None

    return read


@dataclass
class LocalExecutor:
    manifest: Path
    workdir: Path
    claims: dict[str, str] = field(default_factory=dict)
    secrets_dir: Path | None = None
    poll_seconds: float = 1.0
    echo: Callable[[str], None] = print
    # None: every event and every line of every Job's pod (--verbose); else stage lines,
    # a progress line and warnings, with the pods' output left in their log files.
    console: Console | None = None

    def __post_init__(self) -> None:
        from .validation import load_documents

        [document] = load_documents(self.manifest)
        self.document = document
        resource = api.RFTRun.model_validate(document)
        self.spec = resource.spec
        self.name = resource.metadata.name or self.manifest.stem
        self.namespace = resource.metadata.namespace or "default"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = LocalStore(self.workdir / STORE_FILE, on_create=self._on_create)
        claims = local_claims(self.spec, self.workdir, self.manifest.parent.resolve(), self.claims)
        missing = [c for c in claims_used(self.spec) if c not in claims]
        if missing:
            raise ValueError(
                f"no folder for PVC {', '.join(missing)}: pass --pvc {missing[0]}=DIR "
                f"or create {self.manifest.parent / missing[0]}"
            )
        self.kubelet = ProcessKubelet(
            self.store,
            Node(
                claims=claims,
                pods_dir=self.workdir / "cluster" / "pods",
                secrets=secrets_from(self.secrets_dir),
                image_env={k: os.environ[k] for k in IMAGE_ENV if k in os.environ},
            ),
            self.workdir / "cluster" / "kubelet",
            on_line=self._on_line,
            python_bin=str(Path(sys.executable).parent),
        )
        shutil.copyfile(self.manifest, self.workdir / "manifest.yaml")
        self._warnings: list[dict[str, Any]] = []
        self._invoked = time.time()

    @property
    def run_dir(self) -> Path:
        parts = [self.spec.storage.sub_path] if self.spec.storage.sub_path else []
        return Path(self.kubelet.node.claims[self.spec.storage.pvc], *parts, self.name)

    # -- output --------------------------------------------------------------------------

    @property
    def pods_dir(self) -> Path:
        """cluster/pods/<pod>/: each pod's log, termination message and timeline."""
        return self.kubelet.node.pods_dir

    def _on_create(self, obj: dict[str, Any]) -> None:
        if obj.get("kind") != "Event":
            return
        if self.console is not None:
            if obj.get("type") == "Warning":
                self._warnings.append(obj)  # shown with the status that explains it
            return
        marker = "!" if obj.get("type") == "Warning" else "-"
        self.echo(f"{marker} {obj.get('reason')}: {obj.get('message')}")

    def _on_line(self, pod: dict[str, Any], line: str) -> None:
        if self.console is not None:
            return
        owners = pod.get("metadata", {}).get("ownerReferences") or [{}]
        if owners[0].get("kind") == "Job":
            self.echo(f"  [{owners[0].get('name')}] {line[-300:]}")

    def _live(self, job: str | None = None, index: int | None = None) -> LiveProgress | None:
        """The freshest progress a job of this invocation wrote (or job `job` of iteration
        `index`, finished or not)."""
        if job is not None and index is not None:
            paths = [Path(RunPaths(str(self.run_dir)).iteration(index).live(job))]
        else:
            paths = list(self.run_dir.glob("it-*/live/*.json"))
        found = []
        for path in paths:
            with contextlib.suppress(OSError, ValueError):
                found.append(LiveProgress.model_validate_json(path.read_text("utf-8")))
        if job is None:
            found = [f for f in found if f.updated >= self._invoked and not f.finished]
        return max(found, key=lambda f: f.updated, default=None)

    def _report(self, status: api.RFTRunStatus) -> None:
        console = self.console
        if console is None:
            return
        failed = status.stage == "Failed"
        warnings, self._warnings = self._warnings, []
        console.print(
            f"! {w.get('reason')}: {w.get('message')}"
            for w in warnings
            if not (failed and w.get("message") == status.message)
        )
        console.show(status, self._live(), time.monotonic(), lambda k: self._live("train", k))
        if failed:
            console.failed(status, self.pods_dir)

    # -- the run object ------------------------------------------------------------------

    async def _submit(self) -> dict[str, Any]:
        """`kubectl apply` of the manifest: create the RFTRun, or update its spec; a rerun
        of a Failed run asks it to retry (rft.dev/retry)."""
        try:
            current = await self.store.get(api.API_VERSION, api.KIND, self.namespace, self.name)
        except NotFound:
            obj = {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self.document.get("spec") or {},
            }
            await self.store.create(obj)
            return await self.store.get(api.API_VERSION, api.KIND, self.namespace, self.name)
        patch: dict[str, Any] = {"spec": self.document.get("spec") or {}}
        if known_status(current.get("status") or {}).stage == "Failed":
            patch["metadata"] = {"annotations": {RETRY_ANNOTATION: now()}}
            self.echo(f"- Retry: {self.name} failed before; continuing from the failed stage")
        await self.store.patch(api.API_VERSION, api.KIND, self.namespace, self.name, patch)
        return await self.store.get(api.API_VERSION, api.KIND, self.namespace, self.name)

    async def _observed(self) -> tuple[list[Any], list[Any], list[Any]]:
        def in_ns(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [o for o in objects if o["metadata"].get("namespace") == self.namespace]

        return (
            in_ns(await self.store.list_all("apps/v1", "Deployment")),
            in_ns(await self.store.list_all("batch/v1", "Job")),
            in_ns(await self.store.list_all("v1", "Pod")),
        )

    # -- the loop ------------------------------------------------------------------------

    async def step(self) -> api.RFTRunStatus:
        """One kubelet pass, then one reconcile pass; returns the run's status."""
        await self.kubelet.tick()
        body = await self.store.get(api.API_VERSION, api.KIND, self.namespace, self.name)
        await reconcile_run(self.store, body, await self._observed())
        body = await self.store.get(api.API_VERSION, api.KIND, self.namespace, self.name)
        status = known_status(body.get("status") or {})
        atomic_write_json(self.workdir / STATUS_FILE, status.to_wire())
        self._report(status)
        return status

    async def _run(self) -> api.RFTRunStatus:
        stopped = self.kubelet.stop_leftovers()
        if stopped:
            self.echo(f"- Adopted: stopped {len(stopped)} process(es) left by an earlier run")
        await self.kubelet.forget_lost_pods()
        submitted = await self._submit()
        if self.console is not None:
            self.console.start(known_status(submitted.get("status") or {}), time.monotonic())
        while True:
            status = await self.step()
            if status.stage in (*TERMINAL, "Suspended"):
                await self.kubelet.tick()  # let the garbage collector stop released pods
                return status
            await asyncio.sleep(self.poll_seconds)

    def run_until_done(self) -> api.RFTRunStatus:
        """Step until the run ends; Ctrl-C (or SIGTERM) stops every pod and keeps state.

        SIGINT gets an explicit handler: a process started in the background by a
        non-interactive shell inherits SIGINT as ignored, and Python then never raises
        KeyboardInterrupt."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, _interrupt)
        started = time.monotonic()
        storage = Path(self.kubelet.node.claims[self.spec.storage.pvc])
        user = cache_root()
        # (copy, the user's cache, the run's): filled by an earlier run, so no DeepSpeed op
        # rebuild, no sampler model compile, and no vLLM model inspection in a subprocess
        # (~9 s of the sampler's start on 2 CPUs); what this run adds goes back after it
        caches: list[tuple[Callable[[Path, Path], int], Path, Path]] = [
            (copy_builds, user / "torch_extensions", storage.joinpath(*OPS_CACHE_IN_STORAGE)),
            (copy_compiled, user / "torchinductor", storage.joinpath(*KERNELS_IN_STORAGE)),
            (
                functools.partial(copy_compiled, replace_older=True),
                user / "vllm",
                storage.joinpath(*VLLM_CACHE_IN_STORAGE),
            ),
        ]
        for copy, users, runs in caches:
            copy(users, runs)
        try:
            return asyncio.run(self._run())
        finally:
            for copy, users, runs in caches:
                copy(runs, users)
            if self.console is not None:
                self.console.clear()
            with contextlib.suppress(KeyboardInterrupt):
                self.kubelet.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.echo(f"- local run: {time.monotonic() - started:.0f} s in this invocation")
