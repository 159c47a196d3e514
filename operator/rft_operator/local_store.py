"""A file-backed Kubernetes object store for `rft run --local`: the API server's part.

It keeps the RFTRun and every object the operator creates (Deployments, Jobs, Services,
Pods, Events) as plain dicts, assigns what an API server assigns (uid, generation,
creationTimestamp), and saves them atomically after each change so a killed run resumes
from the same objects. It is not an API server: no admission, no watches, no versions.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rft_runtime.files import atomic_write_json

from .client import NotFound, merge_patch
from .conditions import now

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])


class LocalStore:
    """Implements `client.Client` over a dict persisted to one JSON file."""

    def __init__(self, path: Path, on_create: Callable[[dict[str, Any]], None] | None = None):
        self.path = path
        self.on_create = on_create
        self.objects: dict[Key, dict[str, Any]] = {}
        if path.exists():
            for obj in json.loads(path.read_text(encoding="utf-8")):
                self.objects[key_of(obj)] = obj

    def save(self) -> None:
        atomic_write_json(self.path, list(self.objects.values()))

    # -- client.Client -------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((api_version, kind, namespace, name))
        if obj is None:
            raise NotFound(f"{kind} {namespace}/{name}")
        return copy.deepcopy(obj)

    async def list_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj)
            for (v, k, _, _), obj in self.objects.items()
            if (v, k) == (api_version, kind)
        ]

    async def create(self, obj: dict[str, Any]) -> bool:
        key = key_of(obj)
        if key in self.objects:
            return False
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        meta["generation"] = 1
        self.objects[key] = obj
        self.save()
        if self.on_create is not None:
            self.on_create(copy.deepcopy(obj))
        return True

    async def apply(self, obj: dict[str, Any]) -> None:
        current = self.objects.get(key_of(obj))
        if current is None:
            await self.create(obj)
            return
        applied = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
        updated = merge_patch(current, copy.deepcopy(applied))
        for field in ("labels", "annotations", "ownerReferences"):
            if field in obj["metadata"]:
                updated["metadata"][field] = copy.deepcopy(obj["metadata"][field])
        self._store(current, updated)

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        current = self.objects.get((api_version, kind, namespace, name))
        if current is None:
            raise NotFound(f"{kind} {namespace}/{name}")
        if subresource == "status":
            patch = {"status": patch.get("status")}
        elif subresource is None:
            patch = {k: v for k, v in patch.items() if k != "status"}
        updated = merge_patch(current, patch)
        self._store(current, updated)
        return copy.deepcopy(updated)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        if self.objects.pop((api_version, kind, namespace, name), None) is None:
            return False
        self.save()
        return True

    def _store(self, current: dict[str, Any], updated: dict[str, Any]) -> None:
        if updated == current:
            return
        if updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        self.objects[key_of(updated)] = updated
        self.save()
