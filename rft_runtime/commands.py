"""The container commands of each job; the operator's manifests and the local executor
both use them, so a pod and a local process run exactly the same thing."""

from __future__ import annotations

from .config.jobs import TRAIN_MASTER_PORT


def serve_command(config_path: str, python: str = "python") -> list[str]:
    return [python, "-m", "rft_runtime.serve", "--config", config_path]


def score_command(config_path: str, python: str = "python") -> list[str]:
    return [python, "-m", "rft_runtime.score", "--config", config_path]


def train_command(
    config_path: str,
    *,
    nodes: int,
    gpus_per_node: int,
    node_rank: str = "0",
    master_addr: str = "127.0.0.1",
    master_port: int = TRAIN_MASTER_PORT,
    launcher: str = "deepspeed",
) -> list[str]:
    """DeepSpeed's launcher without ssh: every node (pod) starts its own local ranks.

    `node_rank` is a string so the operator can pass `$(JOB_COMPLETION_INDEX)`. On CPU
    (gpus_per_node 0) one process per node runs.
    """
    return [
        launcher,
        "--no_ssh",
        f"--num_nodes={nodes}",
        f"--num_gpus={max(gpus_per_node, 1)}",
        f"--node_rank={node_rank}",
        f"--master_addr={master_addr}",
        f"--master_port={master_port}",
        "--module",
        "rft_runtime.train",
        "--config",
        config_path,
    ]
