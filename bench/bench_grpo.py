"""Issue 21's figures: a GRPO run (`rft run MANIFEST --local`), tabulated from what it wrote;
optionally side by side with another finished run (e.g. the offline loop on the same task).

    nice -n 15 .venv/bin/python -m bench.bench_grpo --workdir /tmp/grpo-sync
    nice -n 15 .venv/bin/python -m bench.bench_grpo --workdir /tmp/grpo-async --async
    .venv/bin/python -m bench.bench_grpo --tabulate /tmp/grpo-sync --compare /tmp/offline

Runs `examples/arith-grpo.yaml` unless `--manifest` names another; `--async`, `--steps N`
and `--iterations N` override the manifest (written to WORKDIR/manifest.yaml). Prints and
writes WORKDIR/grpo.md + grpo.json:
- held-out pass@1 over time: for each policy k, when its evaluation finished (seconds since
  the first pod started, from the process kubelet's pod timelines) and its score — the same
  for any run, so `--compare` puts an offline run's curve beside it;
- per GRPO iteration: steps, steps per minute, the mean step split into waiting for the
  batch (generation), scoring, training and policy sync, the reward of the first and last
  steps, the policy lag.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import yaml

from rft_operator.api import RFTRunStatus

from .bench_local_run import pod_timelines
from .bench_rft_vs_reference import REPO, overridden_manifest, timed_run

SPLIT = ("wait_seconds", "scoring_seconds", "training_seconds", "policy_sync_seconds")


def run(manifest: Path, workdir: Path, iterations: int | None, grpo: dict[str, Any]) -> Path:
    run_dir = workdir / "rft"
    if run_dir.exists() and any(run_dir.iterdir()):
        sys.exit(f"{run_dir} holds an earlier run (rft would resume it); pick another --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / "manifest.yaml"
    document = yaml.safe_load(manifest.read_text())
    count = iterations or document["spec"].get("iterations", {}).get("max", 3)
    pvcs = overridden_manifest(manifest, count, copy)
    if grpo:
        edited = yaml.safe_load(copy.read_text())
        edited["spec"]["training"].setdefault("grpo", {}).update(grpo)
        copy.write_text(yaml.safe_dump(edited, sort_keys=False))
    cmd = [sys.executable, "-m", "rft_operator.cli", "run", str(copy), "--local"]
    code, _ = timed_run([*cmd, "--workdir", str(run_dir), *pvcs], workdir / "rft.log")
    if code != 0:
        sys.exit(f"rft run failed ({code}); see {workdir / 'rft.log'}")
    return run_dir


def eval_curve(run_dir: Path) -> list[dict[str, Any]]:
    """(policy, seconds since the run's first pod started, primary score) per evaluation."""
    status = RFTRunStatus.model_validate_json((run_dir / "status.json").read_text())
    timelines = pod_timelines(run_dir)
    if not timelines:
        return []
    start = min(t["started"] for t in timelines if "started" in t)
    finished = {
        t["owner"]: t["finished"]
        for t in timelines
        if t.get("ownerKind") == "Job" and "finished" in t
    }
    name = yaml.safe_load((run_dir / "manifest.yaml").read_text())["metadata"]["name"]
    points = []
    if status.baseline and status.baseline.eval_score is not None:
        end = finished.get(f"{name}-it0-score")
        points.append(
            {"policy": "base", "seconds": _since(end, start), "score": status.baseline.eval_score}
        )
    for item in status.iterations or []:
        if item.eval_score is None:
            continue
        end = finished.get(f"{name}-it{item.index + 1}-score")
        points.append(
            {"policy": f"it {item.index}", "seconds": _since(end, start), "score": item.eval_score}
        )
    return points


def _since(end: float | None, start: float) -> float | None:
    return round(end - start, 1) if end is not None else None


def grpo_iterations(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(run_dir.rglob("it-*/train-metrics.json")):
        metrics = json.loads(path.read_text())
        if metrics.get("method") != "grpo" or not metrics.get("history"):
            continue
        history = metrics["history"]
        total = sum(h["step_seconds"] for h in history)
        rows.append(
            {
                "iteration": path.parent.name,
                "async": metrics["async"],
                "steps": len(history),
                "steps_per_minute": round(60 * len(history) / total, 2) if total else None,
                **{k: round(sum(h[k] for h in history) / len(history), 2) for k in SPLIT},
                "step_seconds": round(total / len(history), 2),
                "reward_first": history[0]["reward_mean"],
                "reward_last": history[-1]["reward_mean"],
                "zero_signal_mean": round(
                    sum(h["zero_signal_fraction"] for h in history) / len(history), 3
                ),
                "policy_lag_max": max(h["policy_lag"] for h in history),
                "rewards": [h["reward_mean"] for h in history],
            }
        )
    return rows


def table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "-")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def report(run_dir: Path, compare: Path | None) -> tuple[str, dict[str, Any]]:
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "run": str(run_dir),
        "eval": eval_curve(run_dir),
        "grpo": grpo_iterations(run_dir),
    }
    parts = [f"machine: {result['machine']}", "", f"## held-out pass@1 over time: {run_dir}"]
    parts.append(table(result["eval"], ["policy", "seconds", "score"]))
    if compare is not None:
        result["compare"] = {"run": str(compare), "eval": eval_curve(compare)}
        parts += ["", f"## held-out pass@1 over time: {compare}"]
        parts.append(table(result["compare"]["eval"], ["policy", "seconds", "score"]))
    if result["grpo"]:
        keys = ["iteration", "async", "steps", "steps_per_minute", "step_seconds", *SPLIT]
        keys += ["reward_first", "reward_last", "zero_signal_mean", "policy_lag_max"]
        parts += ["", "## GRPO steps (means per step)", table(result["grpo"], keys)]
    return "\n".join(parts) + "\n", result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--manifest", type=Path, default=REPO / "examples" / "arith-grpo.yaml")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--steps", type=int, help="training.grpo.stepsPerIteration")
    parser.add_argument("--async", dest="async_", action="store_true")
    parser.add_argument("--tabulate", type=Path, help="a finished run folder (no run)")
    parser.add_argument("--compare", type=Path, help="another finished run folder")
    args = parser.parse_args()
    if args.tabulate is not None:
        run_dir, out = args.tabulate, args.tabulate
    elif args.workdir is not None:
        grpo: dict[str, Any] = {"async": True} if args.async_ else {}
        if args.steps:
            grpo["stepsPerIteration"] = args.steps
        run_dir, out = run(args.manifest, args.workdir, args.iterations, grpo), args.workdir
    else:
        parser.error("give --workdir (run, then tabulate) or --tabulate RUN_DIR")
    text, result = report(run_dir, args.compare)
    print(text)
    (out / "grpo.md").write_text(text)
    (out / "grpo.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
