"""metav1.Condition bookkeeping: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

import datetime

from .api import Condition


def now() -> str:
    """The current time as Kubernetes writes it in status (RFC 3339, seconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


CONDITION_TYPES = ("Ready", "Sampling", "Training", "Succeeded", "Failed", "Suspended")


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """A new list with `type_` set; other conditions unchanged, order stable."""
    value = "True" if status else "False"
    out: list[Condition] = []
    found = False
    for condition in conditions:
        if condition.type != type_:
            out.append(condition)
            continue
        found = True
        changed = condition.status != value
        out.append(
            Condition(
                type=type_,
                status=value,
                reason=reason,
                message=message,
                last_transition_time=now if changed else condition.last_transition_time,
                observed_generation=generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=value,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            )
        )
    return out


def condition_status(conditions: list[Condition] | None, type_: str) -> str | None:
    for condition in conditions or []:
        if condition.type == type_:
            return condition.status
    return None
