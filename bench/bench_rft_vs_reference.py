"""Issue 17's yardstick: `rft run MANIFEST --local` against the plain-script baseline
(`bench/bench_reference_loop.py`), one after the other on the same machine, same manifest,
same number of iterations. Prints and writes a markdown table: per iteration pass@1, kept
samples and stage seconds of both, wall time per iteration of both, the ratios rft /
reference, and the share of the project's wall time spent on model work.

    nice -n 15 .venv/bin/python -m bench.bench_rft_vs_reference --workdir /tmp/bench17

Writes into WORKDIR (which must not hold an earlier run: `rft run` would resume it):
reference.json + reference.log, manifest.yaml (the manifest with iterations.max = N),
rft/ (the run folder) + rft.log, comparison.md + comparison.json.
`--skip-reference RESULT.json` / `--skip-rft RUN_DIR` re-tabulate an earlier result instead
of running that side again (development only; the table says where each side came from).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.bench_local_run import breakdown
from rft_operator.api import RFTRunStatus
from rft_operator.layout import claims_used
from rft_operator.local import local_claims

from .bench_reference_loop import load_spec

REPO = Path(__file__).resolve().parents[1]
STAGES = ("sampling", "training", "evaluation")


def child_env() -> dict[str, str]:
    """This checkout's code first, whatever is installed in the environment."""
    paths = [str(REPO), str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def timed_run(cmd: list[str], log: Path) -> tuple[int, float]:
    """Run `cmd`, its output both on the terminal and in `log`; (exit code, wall seconds)."""
    print("$ " + " ".join(cmd), flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        code = proc.wait()
    return code, time.monotonic() - started


def run_reference(manifest: Path, iterations: int, workdir: Path, extra: list[str]) -> Path:
    out = workdir / "reference.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_reference_loop",
        str(manifest.resolve()),
        "--iterations",
        str(iterations),
        "--out",
        str(out),
        *extra,
    ]
    code, wall = timed_run(cmd, workdir / "reference.log")
    if code != 0:
        sys.exit(f"reference loop failed ({code}); see {workdir / 'reference.log'}")
    result = json.loads(out.read_text())
    result["process_wall_seconds"] = round(wall, 2)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return out


def overridden_manifest(manifest: Path, iterations: int, target: Path) -> list[str]:
    """Write `manifest` with iterations.max = `iterations` to `target`; the --pvc arguments
    that bind its claims as they would be bound next to the original manifest."""
    document = yaml.safe_load(manifest.read_text())
    document["spec"].setdefault("iterations", {})["max"] = iterations
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    spec = load_spec(manifest)
    claims = local_claims(spec, target.parent, manifest.parent.resolve(), {})
    return [f"--pvc={c}={claims[c]}" for c in claims_used(spec) if c in claims and c != "models"]


def run_rft(manifest: Path, iterations: int, workdir: Path) -> tuple[Path, float]:
    run_dir = workdir / "rft"
    if run_dir.exists() and any(run_dir.iterdir()):
        sys.exit(
            f"{run_dir} holds an earlier run (rft would resume it): remove it or pick "
            "another --workdir"
        )
    copy = workdir / "manifest.yaml"
    pvcs = overridden_manifest(manifest, iterations, copy)
    cmd = [
        sys.executable,
        "-m",
        "rft_operator.cli",
        "run",
        str(copy),
        "--local",
        "--workdir",
        str(run_dir),
        *pvcs,
    ]
    code, wall = timed_run(cmd, workdir / "rft.log")
    if code != 0:
        sys.exit(f"rft run failed ({code}); see {workdir / 'rft.log'}")
    return run_dir, wall


# -- the figures ---------------------------------------------------------------------------


def reference_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per policy (base, then after each iteration): pass@1 per set, kept, stage seconds."""
    rows = [
        {
            "policy": "base",
            "pass@1": {k: v["pass@1"] for k, v in result["baseline"]["eval"].items()},
            "seconds": {"evaluation": result["baseline"]["seconds"]},
        }
    ]
    for item in result["iterations"]:
        s = item["seconds"]
        rows.append(
            {
                "policy": f"after iteration {item['index']}",
                "pass@1": {k: v["pass@1"] for k, v in item["eval"].items()},
                "kept": item["kept"],
                "train_pass_rate": item["train_pass_rate"],
                "seconds": {
                    "sampling": s["sampling"],
                    "training": s["training"] + s["merge"],
                    "evaluation": s["evaluation"],
                },
            }
        )
    return rows


def rft_rows(status: RFTRunStatus) -> list[dict[str, Any]]:
    """The same rows from the run's status (stage seconds as the jobs measured them)."""

    def pass1(scores: dict[str, float] | None) -> dict[str, float]:
        return {
            k.removesuffix("/pass@1"): v for k, v in (scores or {}).items() if k.endswith("/pass@1")
        }

    items = status.iterations or []
    base_eval = (items[0].durations or {}).get("baselineEvaluation") if items else None
    rows: list[dict[str, Any]] = [
        {
            "policy": "base",
            "pass@1": pass1(status.baseline.eval_scores if status.baseline else None),
            "seconds": {"evaluation": base_eval},
        }
    ]
    for item in items:
        d = item.durations or {}
        rows.append(
            {
                "policy": f"after iteration {item.index}",
                "pass@1": pass1(item.eval_scores),
                "kept": item.accepted,
                "train_pass_rate": item.train_pass_rate,
                "seconds": {k: d.get(k) for k in STAGES},
            }
        )
    return rows


def stage_totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {k: sum(r["seconds"].get(k) or 0.0 for r in rows) for k in STAGES}


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else ""


def warnings(ref: dict[str, Any], rft_iterations: int) -> list[str]:
    """Lines that say when the two sides did not do the same work."""
    found = []
    if len(ref["iterations"]) != rft_iterations:
        found.append(
            f"- **not comparable**: the reference ran {len(ref['iterations'])} "
            f"iterations, rft {rft_iterations}"
        )
    options = ref.get("options", {})
    cut = {k: options.get(k) for k in ("max_prompts", "max_eval") if options.get(k)}
    if cut:
        found.append(f"- **not comparable**: the reference ran with timing cuts {cut}")
    return found


def comparison(
    ref: dict[str, Any], ref_source: str, run_dir: Path, rft_source: str, rft_wall: float | None
) -> tuple[str, dict[str, Any]]:
    """The markdown table and its figures as a dict."""
    status = RFTRunStatus.model_validate_json((run_dir / "status.json").read_text())
    parts = breakdown(run_dir)
    parts.pop("table")
    ref_rows, project_rows = reference_rows(ref), rft_rows(status)
    iterations = len(ref["iterations"])
    done = len(status.iterations or [])
    ref_wall = ref.get("process_wall_seconds") or ref["total_wall_seconds"]
    project_wall = rft_wall or parts["wall_seconds"]
    sets = list(ref_rows[0]["pass@1"])
    head = [
        "policy",
        *[f"{s} pass@1" for s in sets],
        "kept",
        "sampling s",
        "training s",
        "evaluation s",
    ]
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
        f"- reference: {ref_source}",
        f"- rft: {rft_source}",
        *warnings(ref, done),
        "",
        "| run | " + " | ".join(head) + " |",
        "| --- " * (len(head) + 1) + "|",
    ]
    for name, rows in (("reference", ref_rows), ("rft", project_rows)):
        for row in rows:
            cells = [
                name,
                row["policy"],
                *[fmt(row["pass@1"].get(s), 3) for s in sets],
                fmt(row.get("kept")),
                *[fmt(row["seconds"].get(k)) for k in STAGES],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    ref_totals, project_totals = stage_totals(ref_rows), stage_totals(project_rows)
    ref_model = sum(ref_totals.values())
    lines += [
        "",
        "| | reference | rft | rft / reference |",
        "| --- | ---: | ---: | ---: |",
        f"| iterations | {iterations} | {done} | |",
        f"| wall s | {ref_wall:.1f} | {project_wall:.1f} | {ratio(project_wall, ref_wall)} |",
        f"| **wall s per iteration** | {ref_wall / iterations:.1f} | "
        f"{project_wall / max(done, 1):.1f} | "
        f"**{ratio(project_wall / max(done, 1), ref_wall / iterations)}** |",
    ]
    for k in STAGES:
        lines.append(
            f"| {k} s (all iterations{', base included' if k == 'evaluation' else ''}) "
            f"| {ref_totals[k]:.1f} | {project_totals[k]:.1f} | "
            f"{ratio(project_totals[k], ref_totals[k])} |"
        )
    lines += [
        f"| model work share of wall | {ref_model / ref_wall:.2f} | "
        f"{parts['model_work_share']:.2f} | |",
        f"| rft sampler start-ups s | | {parts['sampler_startup_seconds']:.1f} | |",
        f"| rft start-up and orchestration s | | "
        f"{parts['startup_and_orchestration_seconds']:.1f} | |",
        "",
        "Stage seconds: reference = the script's `time.monotonic` laps (sampling = generate + "
        "reward + filter; training = tokenize + LoRA steps + merge); rft = the jobs' own "
        "figures from status.json (sampling = the scoring Job's sampling pass incl. reward and "
        "filter; training = the training loop, without process and DeepSpeed start-up, model "
        "load and checkpoint save). Wall = the whole command, measured around the process "
        "when it ran here.",
    ]
    figures = {
        "reference_rows": ref_rows,
        "rft_rows": project_rows,
        "reference_wall": ref_wall,
        "rft_wall": project_wall,
        "iterations": iterations,
        "rft_iterations": done,
        "rft_breakdown": parts,
        "sources": {"reference": ref_source, "rft": rft_source},
    }
    return "\n".join(lines) + "\n", figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=REPO / "examples" / "arith-smollm2.yaml")
    parser.add_argument("--iterations", type=int, help="default: the manifest's iterations.max")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="markdown table (default WORKDIR/comparison.md)")
    parser.add_argument("--skip-reference", type=Path, metavar="RESULT.json")
    parser.add_argument("--skip-rft", type=Path, metavar="RUN_DIR")
    parser.add_argument(
        "--reference-args",
        default="",
        help="extra arguments for the reference loop, e.g. '--gen-batch 16'",
    )
    args = parser.parse_args(argv)
    manifest = args.manifest.resolve()
    iterations = args.iterations or load_spec(manifest).iterations.max
    args.workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()

    if args.skip_reference:
        ref_path, ref_source = args.skip_reference, f"from {args.skip_reference} (not rerun)"
    else:
        ref_path = run_reference(manifest, iterations, args.workdir, args.reference_args.split())
        ref_source = f"ran now (`bench/bench_reference_loop.py`), result {ref_path}"
    if args.skip_rft:
        run_dir, rft_wall = args.skip_rft, None
        rft_source = f"from {args.skip_rft} (not rerun; wall from its status times)"
    else:
        run_dir, rft_wall = run_rft(manifest, iterations, args.workdir)
        rft_source = (
            f"ran now (`rft run {args.workdir / 'manifest.yaml'} --local`), run folder {run_dir}"
        )

    ref = json.loads(ref_path.read_text())
    table, figures = comparison(ref, ref_source, run_dir, rft_source, rft_wall)
    header = (
        f"# rft vs. the plain-script reference: {manifest.name}, {iterations} iterations\n\n"
        f"Load average at the start: {', '.join(f'{x:.1f}' for x in load)}.\n"
    )
    out = args.out or args.workdir / "comparison.md"
    out.write_text(header + table)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")
    print(header + table)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
