"""The sampler: vLLM's OpenAI-compatible server on one model directory.

`python -m rft_runtime.serve --config FILE`. We exec vLLM's API server module as a child
(the `vllm` console script is broken on the CPU build), forward SIGTERM/SIGINT so it shuts
down gracefully, and exit with the child's code so the pod status tells the truth.

A long-lived sampler (`policy_file` set) serves a whole run: a watcher thread loads each new
policy the scoring Jobs ask for in place (see `policy_sync`), instead of a restart.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import httpx

from . import policy_sync
from .config.env import POD_NAME_ENV
from .config.jobs import ServeConfig, load_config

DEFAULT_CPU_KVCACHE_GIB = "4"
# vLLM's CPU backend reserves one core for its front end and pins compute to the rest: on a
# small pod that halves the cores that generate (2 cores: 316 vs 526 tokens/s measured on the
# same prompts, bench_sampling). At or below this many cores every core computes.
SMALL_POD_CPUS = 8
WATCH_SECONDS = 1.0


def initial_model(config: ServeConfig) -> str:
    """The weights to start on: the policy last asked for (a restarted pod must not serve an
    older one), else the configured model."""
    asked = policy_sync.requested_policy(config.policy_file) if config.policy_file else None
    if asked and (Path(asked) / "config.json").is_file():
        return asked
    return config.model_path


def vllm_args(
    config: ServeConfig, python: str = sys.executable, model: str | None = None
) -> list[str]:
    """The server command line for one ServeConfig (pure, so it is unit-testable)."""
    args = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model or initial_model(config),
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


def vllm_env(
    config: ServeConfig, base: dict[str, str] | None = None, cpu_ids: list[int] | None = None
) -> dict[str, str]:
    """Environment for the server: offline hub, a bounded KV cache, every core of a small pod
    computing and a compile cache that loads on CPU, and the weight-reload endpoints when the
    sampler is long-lived."""
    env = dict(os.environ if base is None else base)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    if config.device == "cpu":
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KVCACHE_GIB)
        cpus = sorted(os.sched_getaffinity(0)) if cpu_ids is None else cpu_ids
        if len(cpus) <= SMALL_POD_CPUS:
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))
        # vLLM 0.32's CPU build cannot load its own AOT artifact ('function' object has no
        # attribute 'finalize_loading') and compiles the model again on every start. Its
        # per-graph compile cache does load: a restarted sampler starts in 43 s, not 92.
        env.setdefault("VLLM_USE_AOT_COMPILE", "0")
    if config.policy_file:
        # /collective_rpc (reload_weights) and /reset_prefix_cache: reachable only inside the
        # cluster through the sampler Service, like the rest of the server.
        env["VLLM_SERVER_DEV_MODE"] = "1"
    return env


def local_url(config: ServeConfig) -> str:
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    return f"http://{host}:{config.port}"


class PolicyWatcher(threading.Thread):
    """Loads the policy the policy file names into the running server, and records it."""

    def __init__(self, config: ServeConfig, pod: str, started_on: str) -> None:
        super().__init__(name="policy-watcher", daemon=True)
        assert config.policy_file and config.loaded_dir
        self.config = config
        self.pod = pod
        # what the server was started on: the policy file may change while it starts up,
        # so it is never read again for this (that would report a policy not loaded)
        self.started_on = started_on
        self.loaded: str | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=local_url(self.config), timeout=600) as http:
            while not self.stopped.wait(WATCH_SECONDS):
                try:
                    self.step(http)
                except httpx.HTTPError as exc:  # server not up yet, or going down: next tick
                    if self.loaded is not None:
                        print(f"[policy] {type(exc).__name__}: {exc}", flush=True)

    def step(self, http: httpx.Client) -> None:
        if http.get("/health").status_code != 200:
            return
        wanted = policy_sync.requested_policy(self.config.policy_file or "")
        if self.loaded is None:  # the weights the server started on
            self.loaded = self.started_on
            policy_sync.record_loaded(self.config.loaded_dir or "", self.pod, self.loaded, 0.0)
        if wanted is None or wanted == self.loaded:
            return
        start = time.monotonic()
        print(f"[policy] loading {wanted}", flush=True)
        answer = http.post(
            "/collective_rpc",
            json={"method": "reload_weights", "kwargs": {"weights_path": wanted}},
        )
        answer.raise_for_status()
        http.post("/reset_prefix_cache").raise_for_status()  # cached prefixes are old weights
        seconds = time.monotonic() - start
        self.loaded = wanted
        policy_sync.record_loaded(self.config.loaded_dir or "", self.pod, wanted, seconds)
        print(f"[policy] loaded {wanted} in {seconds:.1f} s", flush=True)


def run(config: ServeConfig) -> int:
    """Start the server, forward termination signals, return its exit code."""
    model = initial_model(config)
    child = subprocess.Popen(vllm_args(config, model=model), env=vllm_env(config))
    watcher = None
    if config.policy_file and config.loaded_dir:
        pod = os.environ.get(POD_NAME_ENV) or socket.gethostname()
        watcher = PolicyWatcher(config, pod, started_on=model)
        watcher.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    if watcher is not None:
        watcher.stopped.set()
    # A child killed by a signal reports -N; shells report 128+N.
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rft_runtime.serve", description=__doc__)
    parser.add_argument("--config", required=True, help="ServeConfig JSON file")
    args = parser.parse_args(argv)
    return run(load_config(ServeConfig, args.config))


if __name__ == "__main__":
    sys.exit(main())
