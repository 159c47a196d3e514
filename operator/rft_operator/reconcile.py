"""One reconcile pass of one RFTRun: observe its children, plan, carry out the actions
(as Kubernetes objects built by `manifests`), write the status. The operator's kopf
handlers and the local executor both call `reconcile_run`, each with its own `Client`
(an API server, or the local object store), so the plan becomes objects in one place."""

from __future__ import annotations

import datetime
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from . import actions as act
from . import api
from .client import Client
from .conditions import now, set_condition
from .layout import cluster_layout
from .manifests import (
    HELD_ANNOTATION,
    MANAGER,
    RunRef,
    build_sampler_deployment,
    build_sampler_service,
    build_score_job,
    build_train_job,
    build_train_service,
)
from .observe import observe_children
from .planner import plan

log = logging.getLogger("rft.operator")
RETRY_ANNOTATION = "rft.dev/retry"  # a new value asks a Failed run to continue

Observed = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Outcome:
    """What one pass did: 'idle', 'changed' or 'invalid', the stage before and after, and
    the status it left (for the operator's per-run metrics)."""

    result: str
    old_stage: str | None
    new_stage: str | None
    status: api.RFTRunStatus | None = None


def known_status(raw: dict[str, Any]) -> api.RFTRunStatus:
    fields = {f.alias or n for n, f in api.RFTRunStatus.model_fields.items()}
    return api.RFTRunStatus.model_validate({k: v for k, v in raw.items() if k in fields})


async def reconcile_run(client: Client, body: dict[str, Any], observed: Observed) -> Outcome:
    """Observe → plan → act → status, for the RFTRun `body` and its observed children."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    ref = RunRef(name=name, namespace=namespace, uid=meta.get("uid", ""))
    status = known_status(body.get("status") or {})
    try:
        spec = api.RFTRunSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        new = invalid_spec_status(status, error, meta.get("generation"))
        await write_status(client, ref, new)
        return Outcome("invalid", status.stage, new.stage, new)
    children = observe_children(name, *observed, now=datetime.datetime.now(datetime.UTC))
    layout = cluster_layout(name, namespace, spec)
    retry = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
    run = act.Run(name, spec, status, meta.get("generation"), retry=retry)
    result = plan(run, children, layout, now())
    for action in result.actions:
        await carry_out(client, ref, spec, action)
    if result.status != status:
        await write_status(client, ref, result.status)
    changed = bool(result.actions) or result.status != status
    return Outcome(
        "changed" if changed else "idle", status.stage, result.status.stage, result.status
    )


def invalid_spec_status(
    status: api.RFTRunStatus, error: ValidationError, generation: int | None
) -> api.RFTRunStatus:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = f"spec.{where}: {first['msg']}; fix the manifest (`rft validate FILE` explains)"
    new = status.model_copy(deep=True)
    new.stage = "Failed"
    new.message = message
    new.conditions = set_condition(
        list(new.conditions or []), "Failed", True, "InvalidSpec", message, now(), generation
    )
    return new


async def write_status(client: Client, ref: RunRef, new: api.RFTRunStatus) -> None:
    wire = new.to_wire()
    # merge patch: name every field so cleared ones are removed, not kept
    patch = {f.alias or n: wire.get(f.alias or n) for n, f in api.RFTRunStatus.model_fields.items()}
    await client.patch(
        api.API_VERSION, api.KIND, ref.namespace, ref.name, {"status": patch}, "status"
    )


async def carry_out(client: Client, ref: RunRef, spec: api.RFTRunSpec, action: act.Action) -> None:
    """One planner action as Kubernetes objects."""
    ns = ref.namespace
    match action:
        case act.StartSampler(name=name, index=index, config=config):
            await client.apply(build_sampler_service(ref, index, name))
            await client.apply(build_sampler_deployment(ref, spec, index, config, name))
        case act.StartScoreJob(index=index, config=config):
            await client.create(build_score_job(ref, spec, index, config))
        case act.StartTrainJob(index=index, config=config):
            await client.apply(build_train_service(ref, index))
            await client.create(build_train_job(ref, spec, index, config))
        case act.Delete(name=name, kind="sampler"):
            await client.delete("apps/v1", "Deployment", ns, name)
            await client.delete("v1", "Service", ns, name)
        case act.Delete(name=name, kind=kind):
            await client.delete("batch/v1", "Job", ns, name)
            if kind == "train":
                await client.delete("v1", "Service", ns, name)
        case act.SuspendChild(name=name):
            await client.patch(
                "batch/v1",
                "Job",
                ns,
                name,
                {"metadata": {"annotations": {HELD_ANNOTATION: "true"}}, "spec": {"suspend": True}},
            )
        case act.ResumeChild(name=name):
            await client.patch(
                "batch/v1",
                "Job",
                ns,
                name,
                {"metadata": {"annotations": {HELD_ANNOTATION: None}}, "spec": {"suspend": False}},
            )
        case act.Event(type=type_, reason=reason, message=message):
            await post_event(client, ref, type_, reason, message)


async def post_event(client: Client, ref: RunRef, type_: str, reason: str, message: str) -> None:
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
        "source": {"component": MANAGER},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": MANAGER,
    }
    try:
        await client.create(event)
    except Exception as error:  # events are best effort: never block the run on them
        log.warning("could not post event %s: %s", reason, error)
