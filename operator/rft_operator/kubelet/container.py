"""A pod's container as a local process: what to execute, with which environment.

A container on a cluster sees its own filesystem, network and DNS. Here the same command
runs on the host, so three things are mapped, by rewriting the container's env values and
arguments (one pass, so a mapped value is never mapped again):
- mounts: each `volumeMounts[].mountPath` (and the termination message path) becomes a
  local folder — a PVC the folder bound to its claim, an emptyDir a folder of the pod;
- DNS: a Service name (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`, a headless
  Service's `<hostname>.<subdomain>...`) becomes the address of the pod behind it, and its
  port the container port;
- the pod network: each pod has its own loopback address (127.x.y.z); the wildcard
  address 0.0.0.0 ("all of the pod's interfaces") and the pod's loopback 127.0.0.1 become
  that address, so two pods can listen on the same port as they would on a cluster. (Not
  all servers honour it: torch's TCPStore, the training rendezvous, listens on every
  address of its port, so two trainings at once on one machine still collide on 29500.)
Everything else — command, args, env, `$(VAR)` expansion, fieldRef and secretKeyRef
values — follows the Kubernetes rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rft_runtime.config.paths import TERMINATION_LOG

DEFAULT_TERMINATION_PATH = TERMINATION_LOG
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class ContainerConfigError(Exception):
    """The container cannot start as written (a missing secret, an unbound claim)."""


@dataclass(frozen=True)
class Node:
    """What this machine gives pods."""

    claims: Mapping[str, str]  # PersistentVolumeClaim name -> local folder
    pods_dir: Path  # pods/<pod>/ holds its emptyDirs, log and termination message
    secrets: Callable[[str, str], str | None] = lambda name, key: None
    image_env: Mapping[str, str] = field(default_factory=dict)  # the "image's" environment


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log: Path
    termination: Path
    mounts: dict[str, str]  # container path -> local folder

    def in_container(self, text: str) -> str:
        """`text` (e.g. a termination message) with local folders written back as the
        container's paths: the status says what a pod on a cluster would say."""
        return rewriter({local: path for path, local in self.mounts.items()}, {})(text)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is `$`, and an
    undefined reference stays as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(one, text)


def field_value(pod: dict[str, Any], path: str) -> str:
    meta = pod.get("metadata") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": (pod.get("status") or {}).get("podIP"),
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    match = _FIELD.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"fieldRef {path} is not supported by the process kubelet")


def container_env(pod: dict[str, Any], container: dict[str, Any], node: Node) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        name = entry["name"]
        if "valueFrom" not in entry:
            env[name] = expand(str(entry.get("value", "")), env)
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = node.secrets(ref["name"], ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(
                    f"env {name}: secret {ref['name']!r} has no key {ref['key']!r}; "
                    "give the process kubelet its secrets (rft run --secrets DIR: "
                    "DIR/<secret name>/<key>)"
                )
            env[name] = value
        else:
            raise ContainerConfigError(
                f"env {name}: only value, fieldRef and secretKeyRef are supported here"
            )
    return env


def mount_map(pod: dict[str, Any], container: dict[str, Any], node: Node) -> dict[str, str]:
    """Container path -> local folder, for each volume mount and the termination path."""
    pod_dir = node.pods_dir / pod["metadata"]["name"]
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    mapping: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise ContainerConfigError(f"volumeMount {mount['name']}: no such volume")
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim not in node.claims:
                raise ContainerConfigError(
                    f"PersistentVolumeClaim {claim!r} is not bound on this machine; "
                    f"give it a folder (rft run --pvc {claim}=DIR)"
                )
            local = Path(node.claims[claim])
        elif "emptyDir" in volume:
            local = pod_dir / "volumes" / mount["name"]
        else:
            kinds = ", ".join(k for k in volume if k != "name")
            raise ContainerConfigError(f"volume {mount['name']}: {kinds} is not supported here")
        if mount.get("subPath"):
            local = local / mount["subPath"]
        local.mkdir(parents=True, exist_ok=True)
        mapping[mount["mountPath"].rstrip("/") or "/"] = str(local)
    path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    mapping[path] = str(pod_dir / "termination-log")
    return mapping


def rewriter(paths: Mapping[str, str], hosts: Mapping[str, str]) -> Callable[[str], str]:
    """One-pass replacement of container paths (and what is below them) and host names
    (`host` or `host:port` keys); longest keys first, whole names only."""
    entries: dict[str, str] = {}
    patterns: list[str] = []
    for key in sorted([*paths, *hosts], key=len, reverse=True):
        if key in paths:
            entries[key] = paths[key]
            patterns.append(rf"(?<![\w.-]){re.escape(key)}(?![\w.-])")
        else:
            entries[key] = hosts[key]
            tail = r"(?!\d)" if ":" in key else r"(?![\w.-])"
            patterns.append(rf"(?<![\w.-]){re.escape(key)}{tail}")
    if not patterns:
        return lambda text: text
    combined = re.compile("|".join(f"({p})" for p in patterns))
    return lambda text: combined.sub(lambda m: entries[m.group(0)], text)


def container_launch(
    pod: dict[str, Any], node: Node, hosts: Mapping[str, str], python_bin: str
) -> Launch:
    """How to run the pod's (first) container here; raises ContainerConfigError."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if len(containers) != 1:
        raise ContainerConfigError("the process kubelet runs pods of exactly one container")
    container = containers[0]
    pod_dir = node.pods_dir / pod["metadata"]["name"]
    pod_dir.mkdir(parents=True, exist_ok=True)
    paths = mount_map(pod, container, node)
    pod_ip = (pod.get("status") or {}).get("podIP") or "127.0.0.1"
    rewrite = rewriter(paths, {**hosts, "0.0.0.0": pod_ip, "127.0.0.1": pod_ip})
    env = container_env(pod, container, node)
    argv = [
        expand(part, env) for part in [*container.get("command", []), *container.get("args", [])]
    ]
    if not argv:
        raise ContainerConfigError(
            "the container has no command (image entrypoints are unknown here)"
        )
    termination = Path(paths[container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH])
    termination.write_text("", encoding="utf-8")
    image_env = dict(node.image_env)
    image_env["PATH"] = python_bin + ":" + image_env.get("PATH", "/usr/bin:/bin")
    full_env = {**image_env, **{k: rewrite(v) for k, v in env.items()}}
    workdir = container.get("workingDir")
    return Launch(
        argv=[rewrite(a) for a in argv],
        env=full_env,
        cwd=rewrite(workdir) if workdir else str(pod_dir),
        log=pod_dir / "log",
        termination=termination,
        mounts=paths,
    )
