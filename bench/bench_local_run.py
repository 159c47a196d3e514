"""Where the wall time of a local run goes: model work (evaluation, sampling, training
steps) versus start-up and orchestration (sampler start, process and DeepSpeed start-up,
polling). Reads a finished work directory of `rft run FILE --local`: the run's status and
the process kubelet's timeline of every pod (`cluster/pods/<pod>/timeline.json`).

Run: .venv/bin/rft run examples/arith-smollm2.yaml --local --workdir /tmp/arith
     .venv/bin/python -m bench.bench_local_run /tmp/arith
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

from rft_operator.api import RFTRunStatus
from rft_operator.table import status_table


def seconds_between(start: str, end: str) -> float:
    parse = datetime.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def model_work(status: RFTRunStatus) -> dict[str, float]:
    work = {"evaluation": 0.0, "sampling": 0.0, "training": 0.0}
    for item in status.iterations or []:
        durations = item.durations or {}
        work["evaluation"] += durations.get("evaluation", 0.0)
        work["evaluation"] += durations.get("baselineEvaluation", 0.0)
        work["sampling"] += durations.get("sampling", 0.0)
        work["training"] += durations.get("training", 0.0)
    return work


def pod_timelines(workdir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text())
        for path in sorted((workdir / "cluster" / "pods").glob("*/timeline.json"))
    ]


def breakdown(workdir: Path) -> dict[str, Any]:
    status = RFTRunStatus.model_validate_json((workdir / "status.json").read_text())
    assert status.start_time and status.completion_time, "the run has not finished"
    wall = seconds_between(status.start_time, status.completion_time)
    model = model_work(status)
    timelines = pod_timelines(workdir)
    samplers = sum(
        t["ready"] - t["started"]
        for t in timelines
        if t.get("ownerKind") == "Deployment" and "ready" in t
    )
    jobs_wall = sum(
        t["finished"] - t["started"]
        for t in timelines
        if t.get("ownerKind") == "Job" and "finished" in t
    )
    model_total = sum(model.values())
    return {
        "wall_seconds": round(wall, 1),
        "model_work_seconds": {k: round(v, 1) for k, v in model.items()},
        "model_work_share": round(model_total / wall, 3),
        "sampler_startup_seconds": round(samplers, 1),
        "job_processes_wall_seconds": round(jobs_wall, 1),
        "startup_and_orchestration_seconds": round(wall - model_total, 1),
        "table": status_table(status),
    }


if __name__ == "__main__":
    result = breakdown(Path(sys.argv[1]))
    table = result.pop("table")
    print(json.dumps(result, indent=2))
    print(table)
