"""`python -m rft_runtime.train --config FILE`: under DeepSpeed's launcher (several
processes; it adds --local_rank and the world's environment) or alone (one process: it sets
that environment itself from --master_addr/--master_port)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Mapping

from pydantic import ValidationError

from rft_runtime import live
from rft_runtime.config.jobs import TrainJobConfig, load_config
from rft_runtime.config.paths import IterationPaths
from rft_runtime.config.termination import write_termination

from .failure import OOM_MESSAGE, TrainFailure, failure, is_out_of_memory


def _read_config(path: str) -> TrainJobConfig:
    try:
        return load_config(TrainJobConfig, path)
    except (OSError, ValidationError) as exc:
        raise TrainFailure("InvalidConfig", f"job config {path}: {exc}") from exc


def single_process_world(
    env: Mapping[str, str], master_addr: str, master_port: int
) -> list[tuple[str, str]]:
    """The variables DeepSpeed's launcher would have set for a world of one process, when
    no launcher started this one (no RANK in the environment); else nothing."""
    if "RANK" in env:
        return []
    return [
        ("RANK", "0"),
        ("LOCAL_RANK", "0"),
        ("WORLD_SIZE", "1"),
        ("LOCAL_SIZE", "1"),
        ("MASTER_ADDR", master_addr),
        ("MASTER_PORT", str(master_port)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rft_runtime.train")
    parser.add_argument("--config", required=True, help="TrainJobConfig JSON")
    parser.add_argument("--local_rank", type=int, default=0, help="set by the launcher")
    parser.add_argument("--master_addr", default="127.0.0.1", help="without a launcher")
    parser.add_argument("--master_port", type=int, default=29500, help="without a launcher")
    args, _ = parser.parse_known_args(argv)
    for name, value in single_process_world(os.environ, args.master_addr, args.master_port):
        os.environ[name] = value
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from .loop import Trainer

    try:
        cfg = _read_config(args.config)
        first = os.environ.get("RANK", "0") == "0"  # one rank reports for all
        path = IterationPaths(cfg.output_dir).live("train") if first else None
        live.configure(path, "train", cfg.run, cfg.iteration, serve=first)
        if cfg.method == "grpo":  # only GRPO samples and scores: it alone needs the rewards
            from .grpo_loop import GrpoTrainer

            trainer: Trainer = GrpoTrainer(cfg)
        else:
            trainer = Trainer(cfg)
        summary = trainer.run()
    except TrainFailure as exc:
        write_termination(failure(exc.reason, exc.message))
        print(f"rft train: {exc.reason}: {exc.message}", file=sys.stderr)
        return 2
    except Exception as exc:
        if is_out_of_memory(exc):
            write_termination(failure("OutOfMemory", OOM_MESSAGE))
            print(f"rft train: OutOfMemory: {OOM_MESSAGE}", file=sys.stderr)
            return 3
        traceback.print_exc()
        write_termination(failure("TrainingFailed", f"{type(exc).__name__}: {exc}"))
        return 1
    write_termination(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
