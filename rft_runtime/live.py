"""A job reports its progress here: the live file and, when a port is set, Prometheus gauges.

One reporter per process, configured once by the job's entry point (`configure`) and used
by whatever loop does the work (`current()`): a loop never needs to know where its figures
go, and without a configured reporter every call is a no-op (tests, benchmarks).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Literal

from .config import live as contract
from .config.env import METRICS_HOST_ENV, METRICS_PORT_ENV
from .files import atomic_write_text

log = logging.getLogger("rft.live")
WRITE_EVERY_SECONDS = 2.0


class Reporter:
    """The current phase of one job; writes the live file at most every few seconds."""

    def __init__(
        self,
        path: str | None,
        job: Literal["score", "train"],
        run: str,
        iteration: int,
        gauges: dict[str, Any] | None = None,
    ) -> None:
        self.path, self.job, self.run, self.iteration = path, job, run, iteration
        self.gauges = gauges or {}
        self.state: contract.LiveProgress | None = None
        self._started = 0.0
        self._written = 0.0

    def start(self, phase: str, unit: Literal["prompts", "steps"], total: int, done: int) -> None:
        self._started = time.monotonic()
        self.state = contract.LiveProgress(
            job=self.job,
            run=self.run,
            iteration=self.iteration,
            phase=phase,
            unit=unit,
            done=done,
            total=total,
            resumed_at=done,
            updated=time.time(),
        )
        self._publish(force=True)

    def advance(
        self,
        done: int,
        tokens: float = 0.0,
        loss: float | None = None,
        reward: float | None = None,
    ) -> None:
        """`done` units so far; `tokens` more tokens since the last call; the latest loss
        (and, for grpo, the latest step's mean reward)."""
        if self.state is None:
            return
        self.state.done = done
        self.state.tokens += tokens
        if loss is not None:
            self.state.loss = loss
        if reward is not None:
            self.state.reward = reward
        self._publish(force=done >= self.state.total)

    def finish(self) -> None:
        if self.state is not None:
            self.state.finished = True
            self._publish(force=True)

    def _publish(self, force: bool) -> None:
        state = self.state
        assert state is not None
        state.elapsed_seconds = round(time.monotonic() - self._started, 3)
        state.updated = time.time()
        self._set_gauges(state)
        if self.path is None or (
            not force and time.monotonic() - self._written < WRITE_EVERY_SECONDS
        ):
            return
        self._written = time.monotonic()
        try:
            atomic_write_text(self.path, state.model_dump_json(by_alias=True))
        except OSError as error:  # progress is for people; never fail the job over it
            log.warning("could not write %s: %s", self.path, error)

    def _set_gauges(self, state: contract.LiveProgress) -> None:
        if not self.gauges:
            return
        labels = (self.run, str(self.iteration), self.job, state.phase)
        self.gauges[contract.PROGRESS_DONE].labels(*labels).set(state.done)
        self.gauges[contract.PROGRESS_TOTAL].labels(*labels).set(state.total)
        rate = state.tokens_per_second
        if rate is not None:
            self.gauges[contract.TOKENS_PER_SECOND].labels(*labels).set(rate)
        if state.loss is not None:
            self.gauges[contract.TRAIN_LOSS].labels(*labels).set(state.loss)


_current = Reporter(None, "score", "", 0)


def current() -> Reporter:
    return _current


def serve_gauges(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Start the Prometheus endpoint when the pod asks for one (METRICS_PORT_ENV); the
    gauges to set, or {} when there is no port or no prometheus_client."""
    env = os.environ if environ is None else environ
    port = env.get(METRICS_PORT_ENV)
    if not port:
        return {}
    try:
        from prometheus_client import CollectorRegistry, Gauge, start_http_server
    except ImportError:
        log.warning("prometheus_client is not installed: no progress metrics")
        return {}
    registry = CollectorRegistry()
    helps = {
        contract.PROGRESS_DONE: "Prompts (scoring) or steps (training) done in this phase",
        contract.PROGRESS_TOTAL: "Prompts or steps of this phase",
        contract.TOKENS_PER_SECOND: "Tokens generated or trained per second by this pod",
        contract.TRAIN_LOSS: "Loss of the last optimizer step",
    }
    gauges = {
        name: Gauge(name, text, contract.JOB_LABELS, registry=registry)
        for name, text in helps.items()
    }
    try:
        start_http_server(int(port), addr=env.get(METRICS_HOST_ENV, "0.0.0.0"), registry=registry)
    except OSError as error:
        log.warning("no progress metrics: port %s: %s", port, error)
        return {}
    return gauges


def configure(
    path: str | None, job: Literal["score", "train"], run: str, iteration: int, serve: bool = True
) -> Reporter:
    """The process's reporter: the live file at `path`, gauges when the pod has a port."""
    global _current
    _current = Reporter(path, job, run, iteration, serve_gauges() if serve else None)
    return _current
