"""The sampler: vLLM's OpenAI-compatible server on one model directory.

`python -m rft_runtime.serve --config FILE`. We exec vLLM's API server module as a child
(the `vllm` console script is broken on the CPU build), forward SIGTERM/SIGINT so it shuts
down gracefully, and exit with the child's code so the pod status tells the truth.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from types import FrameType

from .config.jobs import ServeConfig, load_config

DEFAULT_CPU_KVCACHE_GIB = "4"


def vllm_args(config: ServeConfig, python: str = sys.executable) -> list[str]:
    """The server command line for one ServeConfig (pure, so it is unit-testable)."""
    args = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        config.model_path,
        "--served-model-name",
        config.served_model_name,
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--max-model-len",
        str(config.max_model_len),
        "--dtype",
        config.dtype,
        "--tensor-parallel-size",
        str(config.tensor_parallel_size),
        "--disable-uvicorn-access-log",
    ]
    if config.device == "cuda":
        args += ["--gpu-memory-utilization", str(config.gpu_memory_utilization)]
    return args


def vllm_env(config: ServeConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the server: offline hub, and a bounded KV cache on CPU."""
    env = dict(os.environ if base is None else base)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    if config.device == "cpu":
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KVCACHE_GIB)
    return env


def run(config: ServeConfig) -> int:
    """Start the server, forward termination signals, return its exit code."""
    child = subprocess.Popen(vllm_args(config), env=vllm_env(config))

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    # A child killed by a signal reports -N; shells report 128+N.
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rft_runtime.serve", description=__doc__)
    parser.add_argument("--config", required=True, help="ServeConfig JSON file")
    args = parser.parse_args(argv)
    return run(load_config(ServeConfig, args.config))


if __name__ == "__main__":
    sys.exit(main())
