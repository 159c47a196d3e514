"""Where the wall time of a local run goes: model work (evaluation, sampling, training
steps) versus start-up and orchestration (sampler start, process and DeepSpeed start-up,
polling). Reads a finished run directory of `rft run FILE --local`.

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


def breakdown(run_dir: Path) -> dict[str, Any]:
    status = RFTRunStatus.model_validate_json((run_dir / "status.json").read_text())
    children: dict[str, Any] = json.loads((run_dir / "children.json").read_text())
    timings_path = run_dir / "timings.json"
    timings: dict[str, Any] = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    assert status.start_time and status.completion_time, "the run has not finished"
    wall = seconds_between(status.start_time, status.completion_time)
    model = {"evaluation": 0.0, "sampling": 0.0, "training": 0.0}
    jobs_wall = 0.0
    for name, child in children.items():
        seconds = (child.get("summary") or {}).get("seconds") or {}
        if child["kind"] == "score":
            model["evaluation"] += seconds.get("evaluation", 0.0)
            model["sampling"] += seconds.get("sampling", 0.0)
        elif child["kind"] == "train":
            model["training"] += seconds.get("train", 0.0)
        jobs_wall += child.get("wall_seconds") or timings.get(name, {}).get("wall_seconds", 0.0)
    samplers = sum(
        t.get("ready_seconds", 0.0) for t in timings.values() if t.get("kind") == "sampler"
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
