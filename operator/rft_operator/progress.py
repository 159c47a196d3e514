"""Progress of a run in its status: iteration records, the best checkpoint, stop rules.

Pure functions of (spec, status); the planner calls them after each finished job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rft_runtime.config.jobs import ScoreSummary, TrainSummary
from rft_runtime.config.keys import (
    EVALUATION_SECONDS,
    GENERATION_SECONDS,
    POLICY_SYNC_SECONDS,
    SCORING_SECONDS,
    TRAINING_SECONDS,
    primary_score,
    score_key,
)

from .api import BaselineStatus, BestStatus, IterationStatus, RFTRunSpec, RFTRunStatus
from .schedule import does_evaluate, does_sample

EPSILON = 1e-9
# Keys of IterationStatus.durations (the status's own words for the summaries' seconds).
TRAINING = "training"
EVALUATION = "evaluation"
BASELINE_EVALUATION = "baselineEvaluation"
# grpo: the training Job's step time apart from training, kept under the summary's keys
GRPO_SECONDS = (GENERATION_SECONDS, SCORING_SECONDS, POLICY_SYNC_SECONDS)


def find(status: RFTRunStatus, index: int) -> IterationStatus | None:
    return next((i for i in status.iterations or [] if i.index == index), None)


def record(status: RFTRunStatus, index: int) -> IterationStatus:
    """The status entry of iteration `index`, added (in order) when missing."""
    items = status.iterations = list(status.iterations or [])
    for item in items:
        if item.index == index:
            return item
    item = IterationStatus(index=index)
    items.append(item)
    items.sort(key=lambda i: i.index)
    return item


def record_score(
    spec: RFTRunSpec, status: RFTRunStatus, k: int, summary: ScoreSummary, now: str
) -> None:
    """Record scoring Job k: the evaluation of policy k, and the samples of iteration k."""
    if does_evaluate(spec, k):
        scores = dict(summary.eval_scores)
        ev = spec.evaluation
        primary = summary.eval_score
        if primary is None and ev is not None:
            primary = primary_score(scores, [s.name for s in ev.sets], ev.pass_at_k)
        if k == 0:
            status.baseline = BaselineStatus(eval_score=primary, eval_scores=scores)
            if not does_sample(spec, k) and EVALUATION_SECONDS in summary.seconds:  # grpo
                first = record(status, 0)
                first.durations = {
                    **(first.durations or {}),
                    BASELINE_EVALUATION: summary.seconds[EVALUATION_SECONDS],
                }
        else:
            done = record(status, k - 1)
            done.eval_score, done.eval_scores = primary, scores
            durations = dict(done.durations or {})
            if EVALUATION_SECONDS in summary.seconds:
                durations[EVALUATION] = summary.seconds[EVALUATION_SECONDS]
            done.durations = durations
        update_best(spec, status)
    if does_sample(spec, k):
        item = record(status, k)
        item.samples = summary.samples
        item.accepted = summary.accepted
        item.train_pass_rate = summary.train_pass_rate
        item.mean_reward = summary.mean_reward
        item.started_at = item.started_at or now
        item.durations = {
            **(item.durations or {}),
            **{k_: v for k_, v in summary.seconds.items() if k_ != EVALUATION_SECONDS},
        }
        if k == 0 and EVALUATION_SECONDS in summary.seconds:
            item.durations[BASELINE_EVALUATION] = summary.seconds[EVALUATION_SECONDS]


def record_training(
    spec: RFTRunSpec, status: RFTRunStatus, k: int, summary: TrainSummary, checkpoint: str, now: str
) -> None:
    """Record training Job k: the checkpoint of policy k+1 and how long it took."""
    item = record(status, k)
    item.checkpoint = checkpoint
    item.durations = {
        **(item.durations or {}),
        TRAINING: summary.seconds.get(TRAINING_SECONDS, 0.0),
        **{key: summary.seconds[key] for key in GRPO_SECONDS if key in summary.seconds},
    }
    if summary.samples is not None:  # grpo: the training Job sampled and scored
        item.samples = summary.samples
        item.mean_reward = summary.mean_reward
        item.policy_lag = summary.policy_lag
        item.started_at = item.started_at or now
    item.finished_at = now
    if not spec.evaluation:
        update_best(spec, status)


def guard_violation(
    spec: RFTRunSpec, status: RFTRunStatus, scores: Mapping[str, float]
) -> str | None:
    """Why `scores` break an eval set's maxDrop below its baseline, or None."""
    ev = spec.evaluation
    base = (status.baseline.eval_scores if status.baseline else None) or {}
    if ev is None:
        return None
    for guard in ev.sets[1:]:
        if guard.max_drop is None:
            continue
        key = score_key(guard.name, ev.pass_at_k[0])
        if key in base and key in scores:
            drop = base[key] - scores[key]
            if drop > guard.max_drop + EPSILON:
                return (
                    f"eval set {guard.name} dropped {drop:.3f} below its baseline "
                    f"{base[key]:.3f} (allowed {guard.max_drop})"
                )
    return None


def update_best(spec: RFTRunSpec, status: RFTRunStatus) -> None:
    """The best checkpoint: highest primary score within the guards (the last trained one
    without an evaluation); the base model counts as iteration -1."""
    st = status
    if spec.evaluation is None:
        trained = [i for i in st.iterations or [] if i.checkpoint]
        if trained:
            last = trained[-1]
            st.best = BestStatus(
                iteration=last.index, eval_score=None, checkpoint=last.checkpoint or ""
            )
        return
    candidates: list[BestStatus] = []
    if st.baseline and st.baseline.eval_score is not None:
        candidates.append(
            BestStatus(iteration=-1, eval_score=st.baseline.eval_score, checkpoint=spec.model.uri)
        )
    for item in st.iterations or []:
        if item.eval_score is None or not item.checkpoint:
            continue
        if guard_violation(spec, st, item.eval_scores or {}):
            continue
        candidates.append(
            BestStatus(iteration=item.index, eval_score=item.eval_score, checkpoint=item.checkpoint)
        )
    if candidates:
        st.best = max(candidates, key=lambda b: (b.eval_score or 0.0, -b.iteration))


def best_text(status: RFTRunStatus) -> str:
    best = status.best
    if best is None:
        return "no checkpoint evaluated"
    where = "the base model" if best.iteration < 0 else f"iteration {best.iteration}"
    score = f" with eval score {best.eval_score:.3f}" if best.eval_score is not None else ""
    return f"best is {where}{score}"


@dataclass(frozen=True)
class Stop:
    """A stop rule fired: the run succeeds with this reason and message."""

    reason: str
    message: str


def stop_rule(spec: RFTRunSpec, status: RFTRunStatus, k: int) -> Stop | None:
    """After scoring Job k evaluated policy k: a guard broke, the target was reached, or
    patience ran out — else None (go on)."""
    if not does_evaluate(spec, k) or k == 0:
        return None
    item = find(status, k - 1)
    scores = (item.eval_scores if item else None) or {}
    violation = guard_violation(spec, status, scores)
    if violation:
        return Stop(
            "RegressionGuard",
            f"stopped after iteration {k - 1}: {violation}; {best_text(status)}",
        )
    target = spec.iterations.stop_at_eval_score
    score = item.eval_score if item else None
    if target is not None and score is not None and score >= target - EPSILON:
        return Stop(
            "TargetReached",
            f"eval score {score:.3f} reached "
            f"iterations.stopAtEvalScore {target}; {best_text(status)}",
        )
    patience = spec.iterations.patience
    best = status.best
    if patience is not None and best is not None and (k - 1) - best.iteration >= patience:
        return Stop(
            "NoImprovement", f"no new best for {patience} iteration(s); {best_text(status)}"
        )
    return None
