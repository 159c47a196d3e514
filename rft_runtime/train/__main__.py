"""`python -m rft_runtime.train --config FILE` (the DeepSpeed launcher adds --local_rank)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rft_runtime.train")
    parser.add_argument("--config", required=True, help="TrainJobConfig JSON")
    parser.add_argument("--local_rank", type=int, default=0, help="set by the launcher")
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from .grpo_loop import GrpoTrainer
    from .loop import Trainer

    try:
        cfg = _read_config(args.config)
        first = os.environ.get("RANK", "0") == "0"  # one rank reports for all
        path = IterationPaths(cfg.output_dir).live("train") if first else None
        live.configure(path, "train", cfg.run, cfg.iteration, serve=first)
        trainer = GrpoTrainer(cfg) if cfg.method == "grpo" else Trainer(cfg)
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
