"""metav1.Condition bookkeeping: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

import datetime

from .api import Condition, ConditionType, Stage


def now() -> str:
    """The current time as Kubernetes writes it in status (RFC 3339, seconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    previous = next((c for c in conditions if c.type == type_), None)
    unchanged = previous is not None and previous.status == value
    condition = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=previous.last_transition_time if previous and unchanged else now,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, condition]
    return [condition if c.type == type_ else c for c in conditions]


def condition_status(conditions: list[Condition] | None, type_: str) -> str | None:
    for condition in conditions or []:
        if condition.type == type_:
            return condition.status
    return None


def _stage_flags(stage: Stage) -> dict[ConditionType, bool]:
    """Which condition is True in `stage` (every other one is False)."""
    return {
        "Ready": stage not in ("Succeeded", "Failed", "Suspended"),
        "Sampling": stage in ("StartingSampler", "Sampling", "Evaluating"),
        "Training": stage == "Training",
        "Succeeded": stage == "Succeeded",
        "Failed": stage == "Failed",
        "Suspended": stage == "Suspended",
    }


_IDLE_REASON: dict[ConditionType, str] = {
    "Ready": "",  # never idle: Ready keeps the stage's reason either way
    "Sampling": "Idle",
    "Training": "Idle",
    "Succeeded": "NotYet",
    "Failed": "NotYet",
    "Suspended": "Running",
}


def stage_conditions(
    conditions: list[Condition],
    stage: Stage,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """Every condition set to match `stage`: the True ones carry `reason` and `message`."""
    out = list(conditions)
    for type_, on in _stage_flags(stage).items():
        keeps = on or type_ == "Ready"
        out = set_condition(
            out,
            type_,
            on,
            reason if keeps else _IDLE_REASON[type_],
            message if keeps else "",
            now,
            generation,
        )
    return out
