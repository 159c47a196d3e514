"""The pure planner: (spec, status, observed children) -> actions and the next status.

No I/O and no kopf: the operator's handlers and the local executor both call `plan` and
carry the actions out their own way (Kubernetes objects, or local processes). Level-based:
everything is derived from the status and the children that exist, so a restart at any
moment re-plans the same step and never starts a child twice.

One index k walks the loop: sampler k serves policy k (the base model at k = 0), scoring
Job k evaluates policy k and samples training data, training Job k makes policy k+1. After
the last training, scoring Job `max` only evaluates (the final evaluation).

What a step consists of is `schedule`; how a finished job is recorded, which checkpoint is
best and when to stop is `progress`; the vocabulary of actions is `actions`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from pydantic import ValidationError

from rft_runtime.config.jobs import ScoreSummary, TrainSummary
from rft_runtime.config.spec import GrpoSpec
from rft_runtime.config.termination import INVALID_DATA, failed_with

from . import progress
from .actions import (
    Action,
    Child,
    Delete,
    Event,
    Plan,
    ResumeChild,
    Run,
    StartSampler,
    StartScoreJob,
    StartTrainJob,
    SuspendChild,
)
from .api import IterationStatus, RFTRunSpec, RFTRunStatus, Stage
from .conditions import condition_status, stage_conditions
from .jobconfigs import policy_uri, sampler_of, score_config, serve_config, train_config
from .layout import Layout, UnsupportedUri
from .names import sampler_name, score_name, shared_sampler_name, train_name
from .schedule import does_evaluate, does_sample, needs_policy_server, samples_in_training
from .semantics import INVALID_SPEC, spec_problems


class _Stop(Exception):
    """Ends planning for this pass (waiting, finished or failed)."""


@dataclass
class _Planner:
    run: Run
    children: Mapping[str, Child]
    layout: Layout
    now: str
    status: RFTRunStatus
    actions: list[Action] = field(default_factory=list)

    @property
    def spec(self) -> RFTRunSpec:
        return self.run.spec

    # -- status helpers ------------------------------------------------------------------

    def enter(self, stage: Stage, reason: str, message: str) -> None:
        """Move to `stage` (an Event when it changes) and set every condition to match."""
        st = self.status
        gen = self.run.generation
        if st.stage != stage or st.message != message:
            if st.stage != stage:
                kind: Literal["Normal", "Warning"] = "Warning" if stage == "Failed" else "Normal"
                self.actions.append(Event(kind, reason, message))
            st.stage = stage
            st.message = message
        st.conditions = stage_conditions(
            list(st.conditions or []), stage, reason, message, self.now, gen
        )

    def wait(self, stage: Stage, reason: str, message: str) -> NoReturn:
        self.enter(stage, reason, message)
        raise _Stop

    def finish(self, reason: str, message: str) -> NoReturn:
        self.delete_samplers()
        self.status.completion_time = self.status.completion_time or self.now
        self.enter("Succeeded", reason, message)
        raise _Stop

    def fail(self, reason: str, message: str) -> NoReturn:
        self.delete_samplers()
        self.status.completion_time = self.status.completion_time or self.now
        self.enter("Failed", reason, message)
        raise _Stop

    def delete_samplers(self) -> None:
        for child in self.children.values():
            if child.kind == "sampler" and Delete(child.name, "sampler") not in self.actions:
                self.actions.append(Delete(child.name, "sampler"))

    def record(self, index: int) -> IterationStatus:
        return progress.record(self.status, index)

    def find(self, index: int) -> IterationStatus | None:
        return progress.find(self.status, index)

    # -- the loop ------------------------------------------------------------------------

    def scored(self, k: int) -> bool:
        if does_sample(self.spec, k):
            item = self.find(k)
            return item is not None and item.samples is not None
        if not does_evaluate(self.spec, k):
            return True
        if k == 0:  # evaluation only (grpo): the baseline
            return self.status.baseline is not None
        last = self.find(k - 1)
        return last is not None and last.eval_scores is not None

    def trained(self, k: int) -> bool:
        item = self.find(k)
        return item is not None and item.checkpoint is not None

    def step(self) -> None:
        spec, st = self.spec, self.status
        k = st.iteration or 0
        maximum = spec.iterations.max
        if k > maximum:
            self.finish("MaxIterations", f"iterations.max is now {maximum}; run stopped there")
        if not self.scored(k):
            self.score(k)
        if k >= maximum:
            self.finish("MaxIterations", f"finished {_iterations(maximum)}; {self.best_text()}")
        if not self.trained(k):
            self.train(k)
        st.iteration = k + 1
        if k + 1 == maximum and not does_evaluate(spec, k + 1):
            self.finish("MaxIterations", f"finished {_iterations(maximum)}; {self.best_text()}")

    def ensure_sampler(self, k: int, label: str) -> None:
        """Go on only once the sampler serving policy k is Ready (start it if missing)."""
        name = sampler_of(self.spec, self.run.name, k)
        sampler = self.children.get(name)
        if sampler is None:
            config = serve_config(self.spec, self.status, k, self.layout)
            self.actions.append(StartSampler(name, k, config))
            self.wait(
                "StartingSampler",
                "StartingSampler",
                f"{label}: starting the sampler for policy {k}",
            )
        elif sampler.phase == "Failed":
            self.fail("SamplerFailed", f"sampler {name} failed: {sampler.message}")
        elif sampler.phase != "Ready":
            self.wait(
                "StartingSampler",
                "StartingSampler",
                f"{label}: waiting for sampler {name} to be ready",
            )

    def score(self, k: int) -> None:
        spec = self.spec
        final = k >= spec.iterations.max
        samples = does_sample(spec, k)
        label = f"iteration {k}" if not final else "final evaluation"
        if needs_policy_server(spec, k):
            self.ensure_sampler(k, label)
        stage: Stage = "Sampling" if samples else "Evaluating"
        name = score_name(self.run.name, k)
        job = self.children.get(name)
        what = (
            "sampling and scoring"
            if samples
            else ("evaluating the final policy" if final else f"evaluating policy {k}")
        )
        if job is None:
            job_config = score_config(spec, self.run.name, k, self.layout, self.status)
            self.actions.append(StartScoreJob(name, k, job_config))
            self.wait(stage, "Scoring", f"{label}: {what}")
        if job.phase == "Failed":
            reason = INVALID_DATA if failed_with(job.message, INVALID_DATA) else "ScoringFailed"
            self.fail(reason, f"scoring job {name} failed: {job.message}")
        self.resume_held(job, stage)
        if job.phase != "Succeeded":
            self.wait(stage, "Scoring", f"{label}: {what}")
        summary = self.summary(ScoreSummary, job)
        progress.record_score(spec, self.status, k, summary, self.now)
        own_sampler = sampler_name(self.run.name, k)  # a long-lived one stays for the next k
        if needs_policy_server(spec, k) and own_sampler in self.children:
            self.actions.append(Delete(own_sampler, "sampler"))
        stop = progress.stop_rule(spec, self.status, k)
        if stop is not None:
            self.finish(stop.reason, stop.message)

    def train(self, k: int) -> None:
        item = self.record(k)
        grpo = samples_in_training(self.spec)
        if grpo:  # the training Job samples through the sampler: it must be up
            self.ensure_sampler(k, f"iteration {k}")
        elif not item.accepted:
            item.checkpoint = policy_uri(self.spec, self.status, k, self.layout)
            self.actions.append(
                Event(
                    "Warning",
                    "NoSamplesKept",
                    f"iteration {k}: no sample passed the filter; policy "
                    f"{k} carries over without training",
                )
            )
            return
        name = train_name(self.run.name, k)
        job = self.children.get(name)
        message = f"iteration {k}: training on {item.accepted} samples"
        if grpo:
            steps = (self.spec.training.grpo or GrpoSpec()).steps_per_iteration
            message = f"iteration {k}: GRPO, {steps} policy steps through the sampler"
        if job is None:
            config = train_config(self.spec, self.status, self.run.name, k, self.layout)
            self.actions.append(StartTrainJob(name, k, config))
            self.wait("Training", "Training", message)
        if job.phase == "Failed":
            self.fail("TrainingFailed", f"training job {name} failed: {job.message}")
        self.resume_held(job, "Training")
        if job.phase != "Succeeded":
            self.wait("Training", "Training", message)
        summary = self.summary(TrainSummary, job)
        checkpoint = self.layout.uri_of(summary.checkpoint)
        progress.record_training(self.spec, self.status, k, summary, checkpoint, self.now)

    def resume_held(self, job: Child, stage: Stage) -> None:
        """Un-suspend a Job only if the operator suspended it: a Job created suspended for a
        queue (Kueue) waits for the queue to admit it, so its quota is respected."""
        if job.phase != "Suspended":
            return
        if job.held:
            self.actions.append(ResumeChild(job.name, job.kind))
            return
        self.wait(stage, "Queued", f"{job.name} is waiting for its queue to admit it")

    def summary(self, model: type[Any], job: Child) -> Any:
        try:
            return model.model_validate(job.summary or {})
        except ValidationError:
            self.fail(
                "NoSummary",
                f"{job.name} finished without a readable summary on its "
                "termination log; check the pod's logs",
            )

    def best_text(self) -> str:
        return progress.best_text(self.status)


def _terminal(status: RFTRunStatus) -> bool:
    return "True" in (
        condition_status(status.conditions, "Succeeded"),
        condition_status(status.conditions, "Failed"),
    )


def plan(run: Run, children: Mapping[str, Child], layout: Layout, now: str) -> Plan:
    """The next actions for `run`, and the status to record (see the module docstring)."""
    status = run.status.model_copy(deep=True)
    planner = _Planner(run, children, layout, now, status)
    previous_generation = status.observed_generation
    status.observed_generation = run.generation
    status.start_time = status.start_time or now
    try:
        if _terminal(status) and retry_requested(run):
            retry(planner)
        if _terminal(status):
            planner.delete_samplers()
            raise _Stop
        invalid = spec_problems(run.spec)  # what CEL cannot judge: fail before any child
        if invalid:
            planner.fail(INVALID_SPEC, "; ".join(p.sentence() for p in invalid))
        if previous_generation is not None and run.generation != previous_generation:
            planner.actions.append(
                Event(
                    "Normal",
                    "SpecChanged",
                    "spec changed; children created from now on use the new spec",
                )
            )
        if run.spec.suspend:
            suspend(planner)
        if status.stage == "Suspended":
            planner.actions.append(Event("Normal", "Resumed", "spec.suspend is false; resuming"))
            status.stage = None
        for _ in range(2 * run.spec.iterations.max + 4):
            planner.step()
        raise AssertionError("planner made no progress")  # pragma: no cover
    except _Stop:
        release_idle_samplers(planner)
        release_recorded_jobs(planner)
    except UnsupportedUri as error:
        with contextlib.suppress(_Stop):
            planner.fail("UnsupportedURI", str(error))
    return Plan(planner.actions, status)


def release_idle_samplers(planner: _Planner) -> None:
    """Delete samplers no step needs any more (e.g. left over by a restart right after the
    status recorded their scoring)."""
    k = planner.status.iteration or 0
    shared = shared_sampler_name(planner.run.name)
    for child in planner.children.values():
        if child.kind != "sampler" or Delete(child.name, "sampler") in planner.actions:
            continue
        if planner.spec.sampler.keep_alive:  # it serves every iteration; finish() deletes it
            if child.name != shared:
                planner.actions.append(Delete(child.name, "sampler"))
        elif child.index < k or (child.index == k and planner.scored(k)) or child.name == shared:
            planner.actions.append(Delete(child.name, "sampler"))


def release_recorded_jobs(planner: _Planner) -> None:
    """Delete finished Jobs whose results the status had already recorded before this pass
    (so a failed status write can never lose them); failed Jobs stay for inspection."""
    recorded = _Planner(
        planner.run, planner.children, planner.layout, planner.now, planner.run.status
    )
    for child in planner.children.values():
        if child.kind == "sampler" or child.phase != "Succeeded":
            continue
        done = (
            recorded.scored(child.index) if child.kind == "score" else recorded.trained(child.index)
        )
        if done and Delete(child.name, child.kind) not in planner.actions:
            planner.actions.append(Delete(child.name, child.kind))


def retry_requested(run: Run) -> bool:
    return (
        run.retry is not None
        and run.retry != run.status.retry
        and condition_status(run.status.conditions, "Failed") == "True"
    )


def retry(planner: _Planner) -> None:
    """Continue a Failed run from the stage that failed: every finished stage is recorded
    in the status and kept; the failed children are deleted and planning goes on without
    them, so this same pass makes them anew (a Job resumes from what it already wrote)."""
    st = planner.status
    st.retry = planner.run.retry
    st.completion_time = None
    kept = {}
    for name, child in planner.children.items():
        if child.phase == "Failed":
            planner.actions.append(Delete(child.name, child.kind))
        else:
            kept[name] = child
    planner.children = kept
    planner.actions.append(
        Event("Normal", "Retrying", f"retry {planner.run.retry}: continuing from the failed stage")
    )
    planner.enter("Pending", "Retrying", "retrying from the stage that failed")


def suspend(planner: _Planner) -> NoReturn:
    """Samplers are deleted; Jobs are suspended (marked as held by the operator) — or, when
    a queue manages them, deleted, since a queue owns `suspend` (they resume from what
    they wrote when made again)."""
    queued = planner.spec.runtime.queue_name is not None
    for child in planner.children.values():
        if child.kind == "sampler":
            planner.actions.append(Delete(child.name, "sampler"))
        elif child.phase in ("Pending", "Running") and queued:
            planner.actions.append(Delete(child.name, child.kind))
        elif child.phase in ("Pending", "Running"):
            planner.actions.append(SuspendChild(child.name, child.kind))
    planner.wait("Suspended", "Suspended", "spec.suspend is true: pods stopped, progress kept")


def _iterations(count: int) -> str:
    return f"{count} iteration" if count == 1 else f"{count} iterations"
