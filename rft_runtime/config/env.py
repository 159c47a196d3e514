"""Environment variables the operator sets in a pod and the runtime reads there."""

from __future__ import annotations

import re

from .paths import TORCHINDUCTOR_CACHE, VLLM_CACHE

CONFIG_ENV = "RFT_JOB_CONFIG"  # pods get the job config as JSON in this variable
TERMINATION_LOG_ENV = "RFT_TERMINATION_LOG"  # where the job writes its summary
OPS_CACHE_ENV = "RFT_OPS_CACHE"  # the DeepSpeed op cache on the run storage
TORCH_EXTENSIONS_ENV = "TORCH_EXTENSIONS_DIR"
# The job serves its progress gauges on this address and port (config.live); unset: no server.
METRICS_HOST_ENV = "RFT_METRICS_HOST"
METRICS_PORT_ENV = "RFT_METRICS_PORT"
TEACHER_API_KEY_ENV = "RFT_TEACHER_API_KEY"  # filled from sampler.teacher.apiKeySecretRef
# The sampler keeps its compile caches on the run storage (see paths.VLLM_CACHE).
# The sampler pod's own name (downward API): it records under it which policy it loaded.
POD_NAME_ENV = "RFT_POD_NAME"
SAMPLER_CACHE_ENV = {"VLLM_CACHE_ROOT": VLLM_CACHE, "TORCHINDUCTOR_CACHE_DIR": TORCHINDUCTOR_CACHE}


def judge_api_key_env(reward_name: str) -> str:
    """The variable holding the API key of the judge reward `reward_name` (the operator
    fills it from the reward's judge.apiKeySecretRef)."""
    return "RFT_JUDGE_API_KEY_" + re.sub(r"[^A-Z0-9]", "_", reward_name.upper())
