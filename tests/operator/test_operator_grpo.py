"""A GRPO run through the real operator against kmock: the same objects as any run (one
long-lived sampler Deployment, scoring Jobs that only evaluate, training Jobs), and the
sampler is there for as long as a training Job runs."""

from __future__ import annotations

from typing import Any

from rft_runtime.config.env import CONFIG_ENV

from ..support.stub_kubelet import Kubelet, Outcome
from .conftest import operator_running
from .test_operator import (
    RUN_KEY,
    condition,
    creations,
    exists,
    finished,
    job_index,
    manifest,
    status_of,
    succeed_all,
    wait_for,
)

GRPO = {"method": "grpo", "grpo": {"groupSize": 4, "promptsPerStep": 4, "stepsPerIteration": 3}}


async def test_a_grpo_run_trains_through_the_long_lived_sampler(cluster: Any) -> None:
    cluster.objects[RUN_KEY] = manifest(training=GRPO)
    sampler_up: list[bool] = []
    configs: list[str] = []

    def outcome(name: str, job: dict[str, Any]) -> Outcome:
        if name.endswith("-train"):
            sampler_up.append(exists(cluster, "deployments", "arith-sampler"))
            env = job["spec"]["template"]["spec"]["containers"][0]["env"]
            configs.append(next(e["value"] for e in env if e["name"] == CONFIG_ENV))
            k = job_index(name)
            return (
                "succeed",
                {
                    "kind": "train",
                    "iteration": k,
                    "checkpoint": f"/mnt/rft/arith/it-{k}/checkpoint",
                    "steps": 3,
                    "samples": 48,
                    "meanReward": 0.5,
                    "policyLag": 0,
                    "seconds": {"train": 4.0, "generation": 2.0},
                },
            )
        return succeed_all(name, job)

    async with Kubelet(str(cluster.url), outcome), operator_running():
        await wait_for(lambda: finished(cluster), what="the run to finish")
    status = status_of(cluster)
    assert condition(status, "Succeeded")["reason"] == "MaxIterations"
    assert [i["samples"] for i in status["iterations"]] == [48, 48, 48]
    assert [i["policyLag"] for i in status["iterations"]] == [0, 0, 0]
    assert sampler_up and all(sampler_up)  # every training Job ran beside the sampler
    assert all('"method":"grpo"' in c and "arith-sampler" in c for c in configs)
    made = creations(cluster)
    assert all(count == 1 for count in made.values()), made
    assert set(made) == {"arith-sampler"} | {f"arith-it{k}-score" for k in range(4)} | {
        f"arith-it{k}-train" for k in range(3)
    }
