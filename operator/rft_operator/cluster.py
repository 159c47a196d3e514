"""A cluster's RFTRuns for `rft status`, `rft report` and `rft logs`: read through the
kubeconfig (or the pod's service account) with the `kubernetes` client, read-only.

The CLI prints a cluster run with the same table as a local one: the status is the same
model, whoever wrote it.
"""

from __future__ import annotations

import json
import os
import time
from calendar import timegm
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import api
from .manifests import COMPONENT_LABEL, ITERATION_LABEL, RUN_LABEL
from .reconcile import known_status

COMPONENTS = ("sampler", "score", "train")


class ClusterError(Exception):
    """The cluster could not answer (no kubeconfig, unreachable, forbidden, not found)."""


@dataclass
class Cluster:
    """The API clients of one kubeconfig context, and its default namespace."""

    custom: Any
    core: Any
    namespace: str

    @classmethod
    def connect(cls, context: str | None = None) -> Cluster:
        from kubernetes import client, config

        namespace = "default"
        # read KUBECONFIG now (the client reads it once, when first imported)
        path = os.environ.get("KUBECONFIG") or None
        try:
            config.load_kube_config(config_file=path, context=context)  # type: ignore[no-untyped-call]
            contexts, active = config.list_kube_config_contexts(path)  # type: ignore[no-untyped-call]
            chosen = next((c for c in contexts if c["name"] == context), active)
            namespace = (chosen.get("context") or {}).get("namespace") or namespace
        except (config.ConfigException, OSError) as error:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                raise ClusterError(
                    f"{error}; set KUBECONFIG (or --context) to read runs on a cluster"
                ) from error
        return cls(client.CustomObjectsApi(), client.CoreV1Api(), namespace)

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return function(*args, **kwargs)
        except ApiException as error:
            if error.status == 404:
                raise ClusterError(f"{what}: not found") from error
            raise ClusterError(f"{what}: HTTP {error.status} {error.reason}") from error
        except HTTPError as error:
            raise ClusterError(f"{what}: {error}") from error

    def run(self, name: str, namespace: str | None) -> dict[str, Any]:
        ns = namespace or self.namespace
        found: dict[str, Any] = self._call(
            f"RFTRun {ns}/{name}",
            self.custom.get_namespaced_custom_object,
            api.GROUP,
            api.VERSION,
            ns,
            api.PLURAL,
            name,
        )
        return found

    def runs(self, namespace: str | None, all_namespaces: bool) -> list[dict[str, Any]]:
        if all_namespaces:
            answer = self._call(
                "RFTRuns",
                self.custom.list_cluster_custom_object,
                api.GROUP,
                api.VERSION,
                api.PLURAL,
            )
        else:
            ns = namespace or self.namespace
            answer = self._call(
                f"RFTRuns in {ns}",
                self.custom.list_namespaced_custom_object,
                api.GROUP,
                api.VERSION,
                ns,
                api.PLURAL,
            )
        items: list[dict[str, Any]] = answer.get("items") or []
        return sorted(items, key=lambda o: (o["metadata"].get("namespace"), o["metadata"]["name"]))

    def pods(
        self, name: str, namespace: str | None, component: str | None, iteration: int | None
    ) -> list[dict[str, Any]]:
        """The run's pods (of one component, one iteration), oldest first, as plain objects
        (the client's models reject partial objects; only metadata and phase are read)."""
        ns = namespace or self.namespace
        wanted = {RUN_LABEL: name}
        if component:
            wanted[COMPONENT_LABEL] = component
        if iteration is not None:
            wanted[ITERATION_LABEL] = str(iteration)
        answer = self._call(
            f"pods of RFTRun {ns}/{name}",
            self.core.list_namespaced_pod,
            ns,
            label_selector=",".join(f"{k}={v}" for k, v in wanted.items()),
            _preload_content=False,
        )
        items: list[dict[str, Any]] = json.loads(answer.data).get("items") or []
        # the server filters; checking again costs nothing and holds for any server
        mine = [
            p
            for p in items
            if wanted.items() <= ((p.get("metadata") or {}).get("labels") or {}).items()
        ]
        return sorted(
            mine,
            key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
        )

    def log(self, pod: str, namespace: str | None, tail: int | None, previous: bool) -> str:
        ns = namespace or self.namespace
        answer = self._call(
            f"log of pod {ns}/{pod}",
            self.core.read_namespaced_pod_log,
            pod,
            ns,
            tail_lines=tail,
            previous=previous,
            _preload_content=False,  # the bytes as they are, whatever the content type
        )
        return bytes(answer.data).decode("utf-8", errors="replace")


def status_of(obj: dict[str, Any]) -> api.RFTRunStatus:
    return known_status(obj.get("status") or {})


def _age(stamp: str | None, now: float) -> str:
    if not stamp:
        return "-"
    try:
        then = timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "-"
    seconds = max(0, int(now - then))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def runs_table(objects: Iterable[dict[str, Any]], now: float | None = None) -> str:
    """One row per run, like `kubectl get rftruns`: stage, iteration, best score, age."""
    now = time.time() if now is None else now
    header = ["NAMESPACE", "NAME", "STAGE", "ITERATION", "BEST", "AGE"]
    rows = [header]
    for obj in objects:
        st = status_of(obj)
        best = st.best
        score = "-"
        if best is not None:
            where = "base" if best.iteration < 0 else f"it {best.iteration}"
            value = "-" if best.eval_score is None else f"{best.eval_score:.3f}"
            score = f"{value} ({where})"
        meta = obj["metadata"]
        rows.append(
            [
                meta.get("namespace") or "-",
                meta["name"],
                st.stage or "-",
                "-" if st.iteration is None else str(st.iteration),
                score,
                _age(meta.get("creationTimestamp") or st.start_time, now),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def children_lines(pods: Iterable[dict[str, Any]]) -> list[str]:
    """The run's pods now: which component, iteration, phase (what `rft logs` can read)."""
    lines = []
    for pod in pods:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        lines.append(
            f"  {meta['name']}  {labels.get(COMPONENT_LABEL, '-')} "
            f"it {labels.get(ITERATION_LABEL, '-')}  {(pod.get('status') or {}).get('phase', '-')}"
        )
    return lines
