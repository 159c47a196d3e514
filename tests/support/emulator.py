"""The resources the operator touches, declared to kmock (the Kubernetes API emulator)."""

from __future__ import annotations

from typing import Any

import kmock

RESOURCES = {
    "rft.dev/v1alpha1/rftruns": ("RFTRun", True, ["status"]),
    "apps/v1/deployments": ("Deployment", True, ["status"]),
    "batch/v1/jobs": ("Job", True, ["status"]),
    "v1/services": ("Service", True, []),
    "v1/pods": ("Pod", True, ["status"]),
    "v1/events": ("Event", True, []),
    "v1/namespaces": ("Namespace", False, []),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False, []),
}
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def declare_resources(emulator: Any) -> None:
    """Declare every resource the operator uses, with the verbs and subresources it needs."""
    for key, (kind, namespaced, subresources) in RESOURCES.items():
        emulator.resources[key] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
        )
