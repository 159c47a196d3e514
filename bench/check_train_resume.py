"""Kill/resume check of the training Job on the machine at hand (made for a lent GPU, where
the slow tests cannot run): one Job runs through; a second one is SIGKILLed right after
its first train-state save and started again. The resumed Job must end with the same
steps and the same per-step losses.

    TORCH_CUDA_ARCH_LIST=9.0 python3 -m bench.check_train_resume --model /tmp/model --gpus 1

A second call with the same --workdir skips the run-through and resumes whatever state the
killed Job left (a Job cut off again resumes from its latest save).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.bench_train import write_dataset
from rft_runtime.commands import train_command
from rft_runtime.config.jobs import TrainJobConfig

BATCH = 16


def job_command(work: Path, model: Path, name: str, gpus: int, rows: int) -> list[str]:
    """One epoch of rows / BATCH steps, a train-state save every quarter of them."""
    cfg = TrainJobConfig(
        run="check", iteration=0, dataset_path=str(work / "sft.jsonl"),
        init_model_path=str(model), output_dir=str(work / name), epochs=1, batch_size=BATCH,
        max_seq_len=128, learning_rate=2e-4, gpus_per_node=gpus,
        checkpoint_every_steps=max(rows // BATCH // 4, 1),
    )  # fmt: skip
    path = work / f"{name}.json"
    path.write_text(cfg.model_dump_json(by_alias=True))
    return train_command(str(path), nodes=1, gpus_per_node=gpus, master_port=29511,
                         python=sys.executable)  # fmt: skip


def run_job(command: list[str], log: Path, kill_when: Callable[[], bool] | None = None) -> bool:
    """Run one Job to its end (True) or SIGKILL it once `kill_when` holds (False)."""
    started = time.time()
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    while kill_when is not None and proc.poll() is None:
        if kill_when():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            print(f"{log.stem}: SIGKILL after {time.time() - started:.1f} s")
            return False
        time.sleep(0.2)
    if proc.wait() != 0:
        sys.exit(f"{log.stem} failed:\n{log.read_text()[-3000:]}")
    print(f"{log.stem}: done in {time.time() - started:.1f} s")
    return True


def losses(work: Path, name: str) -> list[float]:
    history = json.loads((work / name / "train-metrics.json").read_text())["history"]
    assert [h["step"] for h in history] == list(range(1, len(history) + 1)), name
    return [h["loss"] for h in history]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/check-train-resume"))
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    write_dataset(work / "sft.jsonl", args.rows)
    latest = work / "killed" / "train-state" / "latest"

    def command(name: str) -> list[str]:
        return job_command(work, args.model, name, args.gpus, args.rows)

    if not (work / "through" / "train-metrics.json").exists():
        run_job(command("through"), work / "through.log")
        run_job(command("killed"), work / "killed.log", kill_when=latest.exists)
    print("resuming from", latest.read_text().strip())
    run_job(command("killed"), work / "killed.log")
    through, resumed = losses(work, "through"), losses(work, "killed")
    worst = max(abs(a - b) for a, b in zip(through, resumed, strict=True))
    resumes = [x for x in (work / "killed.log").read_text().splitlines() if "resumed from" in x]
    print(f"steps {len(through)} / {len(resumed)}, largest loss difference {worst}")
    print("\n".join(resumes))
    if worst > 0.02 or not resumes:
        sys.exit("the resumed Job did not redo the run-through's steps")
    print("resume ok")


if __name__ == "__main__":
    main()
