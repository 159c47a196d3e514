"""The thin kopf layer: observe children, call the planner, carry out its actions.

Every handler ends in `reconcile` (one pass of `reconcile.reconcile_run` against the API
server, under a per-run lock), which is level-based and idempotent: it may run many
times for one change (timer, child events, create/resume/update) and after a restart at
any moment, and it never starts a child twice (deterministic names, create tolerates 409).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import kopf

from . import api
from .client import NotFound
from .kube import Kube, KubeError
from .manifests import MANAGER, RUN_LABEL
from .metrics import (
    RECONCILE_SECONDS,
    RECONCILES,
    STAGE_TRANSITIONS,
    count_error,
    forget_run,
    observe_run,
)
from .reconcile import reconcile_run

log = logging.getLogger("rft.operator")
TIMER_INTERVAL = float(os.environ.get("RFT_TIMER_INTERVAL", "15"))
SERVER_OVERRIDE = "RFT_KUBE_SERVER"  # talk to this API server without credentials (tests, dev)
# Set by the chart when the operator serves one namespace (`--namespace`) under a Role only.
WATCH_NAMESPACE = "RFT_WATCH_NAMESPACE"
_locks: dict[tuple[str, str], asyncio.Lock] = {}
_kube: Kube | None = None
MANAGED = {"app.kubernetes.io/managed-by": MANAGER}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    _locks.clear()  # locks belong to the previous event loop after a restart in-process
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="rft.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="rft.dev")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    if os.environ.get(WATCH_NAMESPACE):
        # One namespace, granted by a Role: no cluster-wide reads. Without this kopf lists
        # Namespaces and retries the 403 for ~80 s before it serves anything.
        settings.scanning.disabled = True


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account or kubeconfig; `RFT_KUBE_SERVER` points at a dev server."""
    global _kube
    server = os.environ.get(SERVER_OVERRIDE)
    info: kopf.ConnectionInfo | None
    if server:
        info = kopf.ConnectionInfo(server=server, insecure=True)
    else:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is not None:
        _kube = Kube(info)
    return info


@kopf.on.cleanup()
async def close(**_: Any) -> None:
    if _kube is not None:
        await _kube.close()


def kube() -> Kube:
    if _kube is None:
        raise RuntimeError("not logged in yet")
    return _kube


# In-memory caches of the children, fed by watch streams (kopf indexes): a reconcile reads
# them instead of listing Deployments, Jobs and Pods from the API server every time.
ChildKey = tuple[str | None, str | None]


def _child_key(namespace: str | None, labels: kopf.Labels) -> ChildKey:
    return (namespace, labels.get(RUN_LABEL))


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
def rft_deployments(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[ChildKey, dict[str, Any]]:
    return {
        _child_key(namespace, labels): {
            "metadata": dict(body.metadata),
            "status": dict(body.status),
        }
    }


@kopf.index("batch", "v1", "jobs", labels=MANAGED)
def rft_jobs(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[ChildKey, dict[str, Any]]:
    return {
        _child_key(namespace, labels): {
            "metadata": dict(body.metadata),
            "spec": {"suspend": body.spec.get("suspend")},
            "status": dict(body.status),
        }
    }


@kopf.index("", "v1", "pods", labels=MANAGED)
def rft_pods(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[ChildKey, dict[str, Any]]:
    statuses = body.status.get("containerStatuses") or []
    return {
        _child_key(namespace, labels): {
            "metadata": {
                k: body.metadata.get(k)
                for k in ("name", "labels", "annotations", "creationTimestamp")
            },
            "status": {"containerStatuses": [{"state": s.get("state")} for s in statuses]},
        }
    }


def _snapshot(key: ChildKey, kwargs: dict[str, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    def items(name: str) -> list[Any]:
        index: kopf.Index[ChildKey, dict[str, Any]] = kwargs[name]
        return list(index.get(key, []))

    return items("rft_deployments"), items("rft_jobs"), items("rft_pods")


@kopf.on.resume(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.create(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.update(api.GROUP, api.VERSION, api.PLURAL, field="spec")
async def on_change(body: kopf.Body, **kwargs: Any) -> None:
    await reconcile(dict(body), kwargs)


@kopf.timer(api.GROUP, api.VERSION, api.PLURAL, interval=TIMER_INTERVAL, initial_delay=1.0)
async def on_timer(body: kopf.Body, **kwargs: Any) -> None:
    await reconcile(dict(body), kwargs)


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def on_run_event(type: str | None, name: str | None, namespace: str | None, **_: Any) -> None:
    """A deleted run's metrics go with it (an event handler: no finalizer on the run)."""
    if type == "DELETED" and name and namespace:
        async with _locks.setdefault((namespace, name), asyncio.Lock()):  # after a pass
            forget_run(namespace, name)
        _locks.pop((namespace, name), None)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def on_child_event(body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
    """A child changed (ready, finished, failed): reconcile its run now, not at the timer."""
    run = (body.get("metadata", {}).get("labels") or {}).get(RUN_LABEL)
    if not run or not namespace:
        return
    await reconcile({"metadata": {"namespace": namespace, "name": run}}, kwargs)


async def reconcile(body: dict[str, Any], indexes: dict[str, Any]) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    lock = _locks.setdefault(key, asyncio.Lock())
    started = time.perf_counter()
    async with lock:
        try:
            # Re-read under the lock: a queued pass must see what the previous one wrote.
            fresh = await kube().get(api.API_VERSION, api.KIND, key[0], key[1])
            outcome = await reconcile_run(kube(), fresh, _snapshot(key, indexes))
            RECONCILES.labels(outcome.result).inc()
            if outcome.new_stage != outcome.old_stage and outcome.new_stage:
                STAGE_TRANSITIONS.labels(outcome.new_stage).inc()
            if outcome.status is not None:
                observe_run(key[0], key[1], outcome.status)
        except NotFound:
            forget_run(*key)
            return
        except KubeError as error:
            count_error(*key)
            raise kopf.TemporaryError(str(error), delay=5) from error
        except Exception:
            count_error(*key)
            raise
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)
