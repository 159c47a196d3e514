"""The operator as its own process, pointed at an API server emulator (tests, benchmarks)."""

from __future__ import annotations

import os
import sys


def operator_command(liveness_port: int, metrics_port: int = 0) -> list[str]:
    """`python -m rft_operator` watching every namespace (metrics server: port 0 = none)."""
    return [
        sys.executable,
        "-m",
        "rft_operator",
        "-A",
        "--metrics-port",
        str(metrics_port),
        "--liveness-port",
        str(liveness_port),
    ]


def operator_env(server: str, timer_interval: float) -> dict[str, str]:
    """The environment that points the operator at `server` without credentials."""
    return {**os.environ, "RFT_KUBE_SERVER": server, "RFT_TIMER_INTERVAL": str(timer_interval)}
