"""Least privilege, measured: the real operator runs a whole RFTRun against kmock (with a
suspend and a resume on the way), every API request it makes is mapped to an RBAC
permission, and the chart's rendered roles must grant each of them and nothing more.

Both install modes are checked: all namespaces (`-A`, one ClusterRole) and one watched
namespace (`--namespace ml`: a Role in that namespace plus a ClusterRole for what is
cluster-scoped). Only the operator's own requests count (User-Agent `rft-operator`, or
`kopf/...` for kopf's), not the test kubelet's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import pytest
from kmock._internal import parsing as kmock_parsing
from kopf.testing import KopfRunner

from tests.operator.conftest import cluster, operator_running
from tests.operator.test_operator import (
    RUN_KEY,
    condition,
    exists,
    finished,
    manifest,
    status_of,
    succeed_all,
    wait_for,
)
from tests.support.stub_kubelet import Kubelet

from .helm import by_kind, one, template

__all__ = ["cluster"]  # the kmock cluster fixture of the operator tests

Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

# Granted but not exercised by the kmock run, each for a reason:
UNEXERCISED = {
    # The planner deletes a Job only to replace a failed or stale one; the happy path and
    # suspend/resume never do (a run's children are otherwise removed by the garbage
    # collector through owner references).
    ("batch", "jobs", "delete"),
}
# Discovery documents (GET /api, /apis, /apis/GROUP/VERSION, /version) are granted to every
# authenticated user by the built-in system:discovery ClusterRole.
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi")


def is_operator(request: Any) -> bool:
    agent = str(request.headers.get("User-Agent", ""))
    return agent == "rft-operator" or agent.startswith("kopf")


def verb_of(request: Any) -> str:
    method = str(getattr(request.method, "value", request.method)).upper()
    if method == "GET":
        if str(request.params.get("watch", "")).lower() in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    if method == "DELETE":
        return "delete" if request.name else "deletecollection"
    verbs = {"POST": "create", "PATCH": "patch", "PUT": "update"}
    if method not in verbs:
        raise AssertionError(f"unexpected HTTP method {method} in {request.url}")
    return verbs[method]


def permission_of(request: Any) -> Permission | None:
    """The RBAC permission a resource request needs; None for a discovery request."""
    resource = request.resource
    if resource is None or not resource.plural:
        path = request.url.path
        assert verb_of(request) in ("get", "list"), f"non-resource write: {request.url}"
        assert path.startswith(DISCOVERY_PREFIXES), f"unexpected non-resource URL {path}"
        return None
    name = resource.plural + (f"/{request.subresource}" if request.subresource else "")
    return (resource.group or "", name, verb_of(request))


def operator_requests(kmock: Any) -> list[Any]:
    requests = [request for request in list(kmock) if is_operator(request)]
    assert requests, "no operator requests recorded: did the User-Agent filter break?"
    return requests


def grants(rules: Iterable[dict[str, Any]]) -> set[Permission]:
    """Expand RBAC rules into permissions (and refuse wildcards and resourceNames)."""
    out: set[Permission] = set()
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), f"wildcard in {key}: {rule}"
        assert not rule.get("resourceNames"), f"unexpected resourceNames: {rule}"
        assert not rule.get("nonResourceURLs"), f"unexpected nonResourceURLs: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


async def full_run_with_suspend(kmock: Any, operator: Any) -> None:
    """A run from creation to Succeeded, suspended and resumed while scoring."""
    kmock.objects[RUN_KEY] = manifest()
    run_url = str(kmock.url).rstrip("/") + "/apis/rft.dev/v1alpha1/namespaces/ml/rftruns/arith"

    async def set_suspend(value: bool, generation: int) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.patch(
                run_url,
                json={"metadata": {"generation": generation}, "spec": {"suspend": value}},
                headers={"Content-Type": "application/merge-patch+json"},
            ) as response,
        ):
            response.raise_for_status()

    async with (
        Kubelet(str(kmock.url), succeed_all, hold={"arith-it0-score"}) as kubelet,
        operator,
    ):
        await wait_for(lambda: exists(kmock, "jobs", "arith-it0-score"), what="scoring")
        await set_suspend(True, 2)
        await wait_for(lambda: status_of(kmock).get("stage") == "Suspended", what="Suspended")
        await wait_for(
            lambda: not exists(kmock, "deployments", "arith-it0-sampler"), what="sampler gone"
        )
        kubelet.hold.clear()
        await set_suspend(False, 3)
        await wait_for(lambda: finished(kmock), what="the run to finish")
    assert condition(status_of(kmock), "Succeeded")["status"] == "True"


@contextlib.asynccontextmanager
async def operator_watching_ml(
    objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[KopfRunner]:
    """The operator as the chart (rendered with watchNamespace=ml: `objects`) runs it: its
    arguments are `--namespace ml` and its environment names the namespace.
    (operator_running() always passes -A.)"""
    deployment = one(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=ml" in container["args"]
    for variable in container["env"]:
        if variable["name"].startswith("RFT_WATCH"):
            monkeypatch.setenv(variable["name"], variable["value"])
    runner = KopfRunner(
        ["run", "--namespace", "ml", "--standalone", "-m", "rft_operator.handlers"], timeout=60
    )
    await asyncio.to_thread(runner.__enter__)
    try:
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)


_parse_path = kmock_parsing.parse_path


def _parse_path_with_namespaces(path: str) -> Any:
    """kmock 0.8 crashes (500) on the collection /api/v1/namespaces; parse it properly."""
    if path.rstrip("/") == "/api/v1/namespaces":
        return kmock_parsing.ParsedPath("", "v1", "namespaces", None, None, None)
    return _parse_path(path)


def forbid_namespace_reads(kmock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Answer 403 to Namespace reads. kopf lists and watches Namespaces when it watches named
    namespaces, and retries a 403 for ~80 s before it falls back to the names it was given;
    the chart's namespaced mode grants nothing cluster-wide and turns kopf's scanning off."""
    monkeypatch.setattr(kmock_parsing, "parse_path", _parse_path_with_namespaces)
    status = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": 'namespaces is forbidden: cannot list resource "namespaces" at cluster scope',
    }
    kmock["get /api/v1/namespaces"] << 403 << status


def assert_least_privilege(used: set[Permission], granted: set[Permission]) -> None:
    missing = used - granted
    assert not missing, f"the chart's RBAC lacks permissions the operator used: {sorted(missing)}"
    unused = granted - used - UNEXERCISED
    assert not unused, f"the chart grants permissions the operator never used: {sorted(unused)}"


async def test_cluster_role_grants_exactly_what_the_operator_uses(cluster: Any) -> None:
    await full_run_with_suspend(cluster, operator_running())
    used = {p for r in operator_requests(cluster) if (p := permission_of(r))}
    # the run really exercised the children: a mapping bug cannot make this pass vacuously
    assert {
        ("batch", "jobs", "create"),
        ("batch", "jobs", "patch"),
        ("apps", "deployments", "delete"),
        ("rft.dev", "rftruns/status", "patch"),
        ("", "events", "create"),
    } <= used, sorted(used)
    objects = template()
    assert not by_kind(objects, "Role"), "all-namespaces mode must not render a Role"
    assert_least_privilege(used, grants(one(objects, "ClusterRole")["rules"]))


async def test_namespaced_role_grants_exactly_what_the_operator_uses(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_namespace_reads(cluster, monkeypatch)
    objects = template({"watchNamespace": "ml"})
    await full_run_with_suspend(cluster, operator_watching_ml(objects, monkeypatch))
    requests = operator_requests(cluster)
    namespaced = {p for r in requests if r.namespace is not None and (p := permission_of(r))}
    cluster_wide = {p for r in requests if r.namespace is None and (p := permission_of(r))}
    # nothing cluster-wide: no Namespace listing (and its retries), no CRD watch
    assert not cluster_wide, sorted(cluster_wide)
    outside = {r.namespace for r in requests if r.namespace not in (None, "ml")}
    assert not outside, f"the operator watching ml touched other namespaces: {outside}"
    assert ("batch", "jobs", "create") in namespaced, sorted(namespaced)
    role = one(objects, "Role")
    assert role["metadata"]["namespace"] == "ml"
    binding = one(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == "ml"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert_least_privilege(namespaced, grants(role["rules"]))
    assert not by_kind(objects, "ClusterRole")
    assert not by_kind(objects, "ClusterRoleBinding")
