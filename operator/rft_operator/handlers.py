"""The thin kopf layer: observe children, call the planner, carry out its actions.

Every handler ends in `reconcile`, which is level-based and idempotent: it may run many
times for one change (timer, child events, create/resume/update) and after a restart at
any moment, and it never starts a child twice (deterministic names, create tolerates 409).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from typing import Any

import kopf
from pydantic import ValidationError

from . import api
from .conditions import now
from .kube import FIELD_MANAGER, Kube, KubeError, object_path
from .layout import cluster_layout
from .manifests import (
    MANAGER,
    RUN_LABEL,
    RunRef,
    build_sampler_deployment,
    build_sampler_service,
    build_score_job,
    build_train_job,
    build_train_service,
)
from .metrics import (
    RECONCILE_ERRORS,
    RECONCILE_SECONDS,
    RECONCILES,
    RUNS_BY_STAGE,
    STAGE_TRANSITIONS,
)
from .observe import observe_children
from .planner import (
    Action,
    Delete,
    Event,
    ResumeChild,
    Run,
    StartSampler,
    StartScoreJob,
    StartTrainJob,
    SuspendChild,
    plan,
)

log = logging.getLogger("rft.operator")
TIMER_INTERVAL = float(os.environ.get("RFT_TIMER_INTERVAL", "15"))
SERVER_OVERRIDE = "RFT_KUBE_SERVER"  # talk to this API server without credentials (tests, dev)
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
            fresh = await kube().request(
                "GET", object_path(api.API_VERSION, api.KIND, key[0], key[1])
            )
            result = await _reconcile(fresh, _snapshot(key, indexes))
            RECONCILES.labels(result).inc()
        except KubeError as error:
            if error.status == 404:
                return
            RECONCILE_ERRORS.inc()
            raise kopf.TemporaryError(str(error), delay=5) from error
        except Exception:
            RECONCILE_ERRORS.inc()
            raise
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)


def _known_status(raw: dict[str, Any]) -> api.RFTRunStatus:
    fields = {f.alias or n for n, f in api.RFTRunStatus.model_fields.items()}
    return api.RFTRunStatus.model_validate({k: v for k, v in raw.items() if k in fields})


async def _reconcile(body: dict[str, Any], observed: tuple[list[Any], list[Any], list[Any]]) -> str:
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    ref = RunRef(name=name, namespace=namespace, uid=meta.get("uid", ""))
    status = _known_status(body.get("status") or {})
    try:
        spec = api.RFTRunSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        await _write_status(ref, status, _invalid_spec_status(status, error, meta))
        return "invalid"
    children = observe_children(name, *observed)
    layout = cluster_layout(name, namespace, spec)
    result = plan(Run(name, spec, status, meta.get("generation")), children, layout, now())
    for action in result.actions:
        await _execute(ref, spec, action)
    if result.status != status:
        await _write_status(ref, status, result.status)
    return "changed" if result.actions or result.status != status else "idle"


def _invalid_spec_status(
    status: api.RFTRunStatus, error: ValidationError, meta: dict[str, Any]
) -> api.RFTRunStatus:
    from .conditions import set_condition

    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = f"spec.{where}: {first['msg']}; fix the manifest (`rft validate FILE` explains)"
    new = status.model_copy(deep=True)
    new.stage = "Failed"
    new.message = message
    new.conditions = set_condition(
        list(new.conditions or []),
        "Failed",
        True,
        "InvalidSpec",
        message,
        now(),
        meta.get("generation"),
    )
    return new


async def _write_status(ref: RunRef, old: api.RFTRunStatus, new: api.RFTRunStatus) -> None:
    wire = new.to_wire()
    # merge patch: name every field so cleared ones are removed, not kept
    patch = {f.alias or n: wire.get(f.alias or n) for n, f in api.RFTRunStatus.model_fields.items()}
    await kube().merge_patch(
        object_path(api.API_VERSION, api.KIND, ref.namespace, ref.name) + "/status",
        {"status": patch},
    )
    if new.stage != old.stage and new.stage:
        STAGE_TRANSITIONS.labels(new.stage).inc()
        if old.stage:
            RUNS_BY_STAGE.labels(ref.namespace, ref.name, old.stage).set(0)
        RUNS_BY_STAGE.labels(ref.namespace, ref.name, new.stage).set(1)


async def _execute(ref: RunRef, spec: api.RFTRunSpec, action: Action) -> None:
    k8s = kube()
    match action:
        case StartSampler(name=_, index=index, config=config):
            await k8s.apply(build_sampler_service(ref, index))
            await k8s.apply(build_sampler_deployment(ref, spec, index, config))
        case StartScoreJob(index=index, config=config):
            await k8s.create(build_score_job(ref, spec, index, config))
        case StartTrainJob(index=index, config=config):
            await k8s.apply(build_train_service(ref, index))
            await k8s.create(build_train_job(ref, spec, index, config))
        case Delete(name=name, kind="sampler"):
            await k8s.delete("apps/v1", "Deployment", ref.namespace, name)
            await k8s.delete("v1", "Service", ref.namespace, name)
        case Delete(name=name):
            await k8s.delete("batch/v1", "Job", ref.namespace, name)
        case SuspendChild(name=name) | ResumeChild(name=name):
            await k8s.merge_patch(
                object_path("batch/v1", "Job", ref.namespace, name),
                {"spec": {"suspend": isinstance(action, SuspendChild)}},
            )
        case Event(type=type_, reason=reason, message=message):
            await _post_event(ref, type_, reason, message)


async def _post_event(ref: RunRef, type_: str, reason: str, message: str) -> None:
    stamp = now()
    digest = hashlib.sha1(f"{reason}{message}{stamp}".encode()).hexdigest()[:10]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{ref.name}.{digest}", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": FIELD_MANAGER},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": FIELD_MANAGER,
    }
    try:
        await kube().create(event)
    except KubeError as error:  # events are best effort: never block the run on them
        log.warning("could not post event %s: %s", reason, error)
