"""The container commands of each job; the operator's manifests and the local executor
both use them, so a pod and a local process run exactly the same thing."""

from __future__ import annotations

import base64
import json

from .config.paths import TRAIN_MASTER_PORT


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
    python: str = "python",
) -> list[str]:
    """DeepSpeed's launcher without ssh: every node (pod) starts its own local ranks.

    `node_rank` is a string so the operator can pass `$(JOB_COMPLETION_INDEX)`. On CPU
    (gpus_per_node 0) one process per node runs.

    One process in all (one node, at most one GPU): no launcher. The training module is
    the pod's process and sets the world of one rank itself (`--master_addr/port`); the
    launcher would only add two Python processes to start and poll (~6 s a pod).
    One node, several GPUs: the `deepspeed` CLI. Several nodes: the CLI (DeepSpeed 0.19)
    refuses `--num_nodes` > 1 unless a hostfile lists the hosts, so we call what it would exec,
    `deepspeed.launcher.launch`, with the world layout it would have derived from that
    hostfile (only the per-node slot counts matter; host names are just keys).
    """
    slots = max(gpus_per_node, 1)
    program = ["--module", "rft_runtime.train", "--config", config_path]
    if nodes <= 1 and slots == 1:
        return [
            python,
            "-u",
            "-m",
            *program[1:],
            f"--master_addr={master_addr}",
            f"--master_port={master_port}",
        ]
    if nodes <= 1:
        return [
            launcher,
            "--no_ssh",
            "--num_nodes=1",
            f"--num_gpus={slots}",
            f"--node_rank={node_rank}",
            f"--master_addr={master_addr}",
            f"--master_port={master_port}",
            *program,
        ]
    world = {f"node-{i}": list(range(slots)) for i in range(nodes)}
    world_info = base64.urlsafe_b64encode(json.dumps(world).encode()).decode()
    return [
        python,
        "-u",
        "-m",
        "deepspeed.launcher.launch",
        f"--world_info={world_info}",
        f"--node_rank={node_rank}",
        f"--master_addr={master_addr}",
        f"--master_port={master_port}",
        *program,
    ]
