"""Where things are, as both sides of the pod boundary see them.

The operator plans with these paths (they go into the job configs and the pod specs); the
jobs write and read the same files. Pod mount points, and the files of one iteration
folder `<run dir>/it-<k>/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

STORAGE_MOUNT = "/mnt/rft"  # where pods mount the run storage
PVC_MOUNT_ROOT = "/mnt/pvc"  # pvc://<claim>/<path> is mounted read-only at /mnt/pvc/<claim>/
TERMINATION_LOG = "/dev/termination-log"  # Kubernetes' default terminationMessagePath
SAMPLER_PORT = 8000
TRAIN_MASTER_PORT = 29500
HF_HOME = f"{STORAGE_MOUNT}/.cache/huggingface"
# DeepSpeed builds its ops (JIT) into TORCH_EXTENSIONS_DIR, a folder of the pod; built ops
# are kept in this cache on the run storage and copied in before the next training starts.
OPS_CACHE = f"{STORAGE_MOUNT}/.cache/torch_extensions"
POD_EXTENSIONS_DIR = "/tmp/torch_extensions"
# The sampler's compiled graphs (vLLM and torch inductor caches), kept on the run storage
# so that the next sampler of the run does not compile them again.
VLLM_CACHE = f"{STORAGE_MOUNT}/.cache/vllm"
TORCHINDUCTOR_CACHE = f"{STORAGE_MOUNT}/.cache/torchinductor"


@dataclass(frozen=True)
class IterationPaths:
    """The files of one iteration folder: written by its scoring and training Jobs."""

    dir: str

    def _file(self, name: str) -> str:
        return str(PurePosixPath(self.dir) / name)

    @property
    def metrics(self) -> str:
        """metrics.json: the scoring Job's metrics."""
        return self._file("metrics.json")

    @property
    def samples(self) -> str:
        """samples.jsonl: every sampled completion with its rewards and filter verdict."""
        return self._file("samples.jsonl")

    @property
    def sft_dataset(self) -> str:
        return self._file("sft.jsonl")

    @property
    def dpo_dataset(self) -> str:
        return self._file("dpo.jsonl")

    def dataset(self, method: Literal["sft", "dpo"]) -> str:
        """The training set the scoring Job wrote for `method`."""
        return self.dpo_dataset if method == "dpo" else self.sft_dataset

    def eval_set(self, name: str) -> str:
        """eval/<set>.jsonl: the evaluation rows of one set."""
        return self._file(f"eval/{name}.jsonl")

    def progress(self, name: str) -> str:
        """progress/<pass>.jsonl: the scoring Job's restart log of one pass."""
        return self._file(f"progress/{name}.jsonl")

    @property
    def checkpoint(self) -> str:
        """The servable (merged) checkpoint the training Job writes: the next policy."""
        return self._file("checkpoint")

    @property
    def policy_steps(self) -> str:
        """policy-steps/step-<n>/: the policies a GRPO training Job publishes to the sampler
        while it trains (the last two are kept; removed once checkpoint/ is served)."""
        return self._file("policy-steps")

    @property
    def train_state(self) -> str:
        """train-state/: the training Job's resumable state (optimizer, scheduler, step)."""
        return self._file("train-state")

    @property
    def train_metrics(self) -> str:
        return self._file("train-metrics.json")

    def live(self, job: str) -> str:
        """live/<job>.json: the job's current progress (config.live.LiveProgress)."""
        return self._file(f"live/{job}.json")


@dataclass(frozen=True)
class RunPaths:
    """The run directory: one folder `it-<k>` per iteration."""

    dir: str

    def iteration(self, index: int) -> IterationPaths:
        return IterationPaths(str(PurePosixPath(self.dir) / f"it-{index}"))

    @property
    def sampler_policy(self) -> str:
        """sampler/policy.json: which policy the run's long-lived sampler must serve (written
        by the scoring Job, watched by the sampler, read by a restarted sampler)."""
        return str(PurePosixPath(self.dir) / "sampler" / "policy.json")

    @property
    def sampler_loaded(self) -> str:
        """sampler/loaded/<pod>.json: which policy each sampler pod has loaded."""
        return str(PurePosixPath(self.dir) / "sampler" / "loaded")
