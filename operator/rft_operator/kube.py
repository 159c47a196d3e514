"""A small async Kubernetes REST client for the handlers (aiohttp, which kopf ships with).

Credentials come from the same `kopf.ConnectionInfo` the operator logs in with, so there
is one source of truth for where the API server is and how to reach it.
"""

from __future__ import annotations

import base64
import contextlib
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf

from .client import NotFound

FIELD_MANAGER = "rft-operator"
USER_AGENT = "rft-operator"  # tells the operator's own API calls apart (RBAC tests)

# (apiVersion, kind) -> plural; only what the operator touches.
PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("batch/v1", "Job"): "jobs",
    ("v1", "Pod"): "pods",
    ("v1", "Event"): "events",
    ("v1", "Secret"): "secrets",
    ("rft.dev/v1alpha1", "RFTRun"): "rftruns",
}


class KubeError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:500]}")
        self.status = status


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """The collection URL; namespace None: across all namespaces."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace is not None else ""
    return f"{prefix}{scope}/{PLURALS[(api_version, kind)]}"


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(api_version, kind, namespace)}/{name}"


def _as_path(data: str | bytes, suffix: str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    with contextlib.suppress(ValueError):
        raw = base64.b64decode(raw, validate=True)
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=suffix)  # noqa: SIM115
    handle.write(raw)
    handle.close()
    return handle.name


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=str(info.ca_path))
    elif info.ca_data:
        context.load_verify_locations(cafile=_as_path(info.ca_data, ".crt"))
    cert = info.certificate_path or (
        _as_path(info.certificate_data, ".crt") if info.certificate_data else None
    )
    key = info.private_key_path or (
        _as_path(info.private_key_data, ".key") if info.private_key_data else None
    )
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


@dataclass
class Kube:
    """GET/POST/PATCH/DELETE against one API server."""

    info: kopf.ConnectionInfo
    session: aiohttp.ClientSession | None = None

    async def _session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
            if self.info.token:
                headers["Authorization"] = f"Bearer {self.info.token}"
            connector = aiohttp.TCPConnector(ssl=ssl_context(self.info))
            self.session = aiohttp.ClientSession(
                base_url=None,
                headers=headers,
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        session = await self._session()
        url = self.info.server.rstrip("/") + path
        async with session.request(
            method, url, json=body, params=params, headers={"Content-Type": content_type}
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise KubeError(response.status, text)
            if not text:
                return {}
            result: dict[str, Any] = await response.json(content_type=None)
            return result

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return await self.request("GET", object_path(api_version, kind, namespace, name))
        except KubeError as error:
            if error.status == 404:
                raise NotFound(f"{kind} {namespace}/{name}") from error
            raise

    async def list_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        answer = await self.request("GET", collection_path(api_version, kind, None))
        items: list[dict[str, Any]] = answer.get("items") or []
        return items

    async def create(self, obj: dict[str, Any]) -> bool:
        """Create `obj`; False if it already exists (a restarted operator re-creating it)."""
        meta = obj["metadata"]
        path = collection_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        try:
            await self.request("POST", path, obj, params={"fieldManager": FIELD_MANAGER})
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply with our field manager (creates or converges the object)."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        try:
            await self.request(
                "PATCH",
                path,
                obj,
                params={"fieldManager": FIELD_MANAGER, "force": "true"},
                content_type="application/apply-patch+yaml",
            )
        except KubeError as error:
            if error.status != 404:
                raise
            # API servers create on apply; emulators without apply support answer 404.
            await self.create(obj)

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        path = object_path(api_version, kind, namespace, name)
        if subresource:
            path += f"/{subresource}"
        try:
            return await self.request(
                "PATCH", path, patch, content_type="application/merge-patch+json"
            )
        except KubeError as error:
            if error.status == 404:
                raise NotFound(f"{kind} {namespace}/{name}") from error
            raise

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        try:
            await self.request(
                "DELETE",
                object_path(api_version, kind, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True
