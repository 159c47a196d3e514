"""What the reconcile pass and the process kubelet need from a Kubernetes API: a handful
of object operations. Two things provide it: `Kube` (HTTP to an API server, or to the kmock
emulator in tests) and `LocalStore` (a file-backed object store for `rft run --local`), so
one reconcile pass and one kubelet serve both paths."""

from __future__ import annotations

from typing import Any, Protocol


class NotFound(Exception):
    """The object does not exist (HTTP 404)."""


class Client(Protocol):
    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The object; raises NotFound."""
        ...

    async def list_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind, in every namespace."""
        ...

    async def create(self, obj: dict[str, Any]) -> bool:
        """Create `obj`; False if it already exists."""
        ...

    async def apply(self, obj: dict[str, Any]) -> None:
        """Create or converge `obj` (server-side apply)."""
        ...

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch of the object (or of its `status` subresource)."""
        ...

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete; False if it was already gone."""
        ...


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: a new value, `target` untouched; None removes a key."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
