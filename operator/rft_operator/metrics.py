"""Prometheus metrics of the operator (served on --metrics-port).

Operator-wide series (reconcile passes, their time, stage transitions) and per-run series
labelled `namespace`, `run`: the current stage, iteration, best score, eval score and
stage durations per iteration, reconcile errors. `observe_run` sets a run's series from
its status after each pass; `forget_run` removes every one of them when the run is
deleted, so a dashboard never shows runs that are gone.
"""

from __future__ import annotations

import contextlib
import threading

from prometheus_client import Counter, Gauge, Histogram

from .api import RFTRunStatus

RECONCILES = Counter("rft_reconciles_total", "Reconcile passes", ["result"])
RECONCILE_SECONDS = Histogram(
    "rft_reconcile_seconds",
    "Time of one reconcile pass",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STAGE_TRANSITIONS = Counter("rft_stage_transitions_total", "Stage changes", ["stage"])

RUN = ["namespace", "run"]
RECONCILE_ERRORS = Counter(
    "rft_reconcile_errors_total", "Reconcile passes of a run that raised", RUN
)
RUNS_BY_STAGE = Gauge("rft_runs", "1 for the stage each RFTRun is in", [*RUN, "stage"])
RUN_ITERATION = Gauge("rft_run_iteration", "Iteration in progress (0-based)", RUN)
RUN_BEST_SCORE = Gauge("rft_run_best_eval_score", "Primary eval score of the best policy", RUN)
RUN_EVAL_SCORE = Gauge(
    "rft_run_eval_score", "Primary eval score after an iteration (-1: base)", [*RUN, "iteration"]
)
RUN_KEPT = Gauge(
    "rft_run_kept_samples", "Training examples kept in an iteration", [*RUN, "iteration"]
)
RUN_STAGE_SECONDS = Gauge(
    "rft_run_stage_seconds",
    "Seconds a stage of an iteration took (status.iterations[].durations)",
    [*RUN, "iteration", "stage"],
)
PER_RUN = (
    RECONCILE_ERRORS,
    RUNS_BY_STAGE,
    RUN_ITERATION,
    RUN_BEST_SCORE,
    RUN_EVAL_SCORE,
    RUN_KEPT,
    RUN_STAGE_SECONDS,
)

_lock = threading.Lock()
# (namespace, run) -> every (metric, label values) set for it: what `forget_run` removes.
_series: dict[tuple[str, str], set[tuple[int, tuple[str, ...]]]] = {}


def _set(metric: Gauge, key: tuple[str, str], extra: tuple[str, ...], value: float) -> None:
    labels = (*key, *extra)
    metric.labels(*labels).set(value)
    _series.setdefault(key, set()).add((PER_RUN.index(metric), labels))


def _remove(series: set[tuple[int, tuple[str, ...]]]) -> None:
    for index, labels in series:
        with contextlib.suppress(KeyError):
            PER_RUN[index].remove(*labels)


def count_error(namespace: str, run: str) -> None:
    with _lock:
        RECONCILE_ERRORS.labels(namespace, run).inc()
        _series.setdefault((namespace, run), set()).add(
            (PER_RUN.index(RECONCILE_ERRORS), (namespace, run))
        )


def observe_run(namespace: str, run: str, status: RFTRunStatus) -> None:
    """Set the run's gauges from its status (and remove those the status no longer has)."""
    key = (namespace, run)
    with _lock:
        before = set(_series.get(key, set()))
        _series[key] = {s for s in before if PER_RUN[s[0]] is RECONCILE_ERRORS}
        if status.stage:
            _set(RUNS_BY_STAGE, key, (status.stage,), 1)
        if status.iteration is not None:
            _set(RUN_ITERATION, key, (), status.iteration)
        if status.best is not None and status.best.eval_score is not None:
            _set(RUN_BEST_SCORE, key, (), status.best.eval_score)
        if status.baseline is not None and status.baseline.eval_score is not None:
            _set(RUN_EVAL_SCORE, key, ("-1",), status.baseline.eval_score)
        for item in status.iterations or []:
            k = str(item.index)
            if item.eval_score is not None:
                _set(RUN_EVAL_SCORE, key, (k,), item.eval_score)
            if item.accepted is not None:
                _set(RUN_KEPT, key, (k,), item.accepted)
            for stage, seconds in (item.durations or {}).items():
                _set(RUN_STAGE_SECONDS, key, (k, stage), seconds)
        _remove(before - _series[key])  # a stage it left, an iteration retried


def forget_run(namespace: str, run: str) -> None:
    """The run was deleted: remove every series that names it."""
    with _lock:
        _remove(_series.pop((namespace, run), set()))
