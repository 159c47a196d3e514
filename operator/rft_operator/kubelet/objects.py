"""Pure helpers on the objects the process kubelet reads and writes: identity and
ownership, the pod a controller makes from its template, and where Service names point."""

from __future__ import annotations

import copy
from typing import Any

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.setdefault("metadata", {})
    return meta


def key_of(obj: dict[str, Any]) -> str:
    meta = meta_of(obj)
    return f"{meta.get('namespace', '')}/{meta['name']}"


def owner_uid(obj: dict[str, Any]) -> str | None:
    for ref in meta_of(obj).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return None


def has_condition(obj: dict[str, Any], type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def dns(services: list[dict[str, Any]], pods: list[dict[str, Any]]) -> dict[str, str]:
    """Host names (and host:port pairs) of the Services, and where they point here."""
    live = [p for p in pods if (p.get("status") or {}).get("phase") in ("Pending", "Running")]
    names: dict[str, str] = {}
    for service in services:
        meta, spec = meta_of(service), service.get("spec") or {}
        ns, name = meta.get("namespace", "default"), meta["name"]
        variants = [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
        if spec.get("clusterIP") == "None":  # headless: one name per pod of the subdomain
            for pod in live:
                pod_spec = pod.get("spec") or {}
                if pod_spec.get("subdomain") == name and pod_spec.get("hostname"):
                    ip = pod["status"]["podIP"]
                    for variant in variants:
                        names[f"{pod_spec['hostname']}.{variant}"] = ip
            continue
        selector = spec.get("selector") or {}
        backends = [
            p
            for p in live
            if selector
            and all((meta_of(p).get("labels") or {}).get(k) == v for k, v in selector.items())
        ]
        if not backends:
            continue
        backend = backends[0]
        ip = backend["status"]["podIP"]
        ports = container_ports(backend)
        for variant in variants:
            names[variant] = ip
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port["port"])
                target = ports.get(target, target) if isinstance(target, str) else target
                names[f"{variant}:{port['port']}"] = f"{ip}:{target}"
    return names


def resolved_probe(container: dict[str, Any]) -> dict[str, Any] | None:
    """The readiness probe with a named port replaced by its number."""
    probe = container.get("readinessProbe")
    if probe is None or "httpGet" not in probe:
        return probe
    port = probe["httpGet"].get("port")
    if isinstance(port, str):
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        port = named.get(port, port)
    return {**probe, "httpGet": {**probe["httpGet"], "port": port}}


def container_ports(pod: dict[str, Any]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name"):
                ports[port["name"]] = int(port["containerPort"])
    return ports


def pod_from_template(
    owner: dict[str, Any], index: int | None, suffix: str, ip: str, created: str
) -> dict[str, Any]:
    """The pod a Deployment or Job controller makes from its template (`index`: the
    completion index of an Indexed Job), owned by it, with its pod address."""
    meta = meta_of(owner)
    template = (owner.get("spec") or {}).get("template") or {}
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    annotations = dict((template.get("metadata") or {}).get("annotations") or {})
    spec = copy.deepcopy(template.get("spec") or {})
    name = f"{meta['name']}-{suffix}"
    if owner["kind"] == "Job":
        labels.update({JOB_NAME_LABEL: meta["name"], "job-name": meta["name"]})
        if index is not None:
            name = f"{meta['name']}-{index}-{suffix}"
            annotations[INDEX_KEY] = str(index)
            labels[INDEX_KEY] = str(index)
            if spec.get("subdomain"):
                spec["hostname"] = f"{meta['name']}-{index}"
    spec["nodeName"] = "process-kubelet"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "creationTimestamp": created,
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": meta["name"],
                    "uid": meta.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {"phase": "Pending", "podIP": ip},
    }
