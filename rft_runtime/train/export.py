"""The servable checkpoint: LoRA merged, init dtype, tokenizer + chat template, atomic rename."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from rft_runtime.config.jobs import TrainJobConfig

from .loading import load_model, lora_config


def _final_module(engine: Any, cfg: TrainJobConfig) -> Any:
    """Full weights on rank 0 (ZeRO-3 shards are gathered; every rank must call this)."""
    if cfg.deepspeed.zero_stage < 3:
        return engine.module if dist.get_rank() == 0 else None
    state = engine._zero3_consolidated_16bit_state_dict()
    if dist.get_rank() != 0:
        return None
    model = load_model(cfg.init_model_path, torch.float32)
    if cfg.mode == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(cfg))
    missing, _ = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "lm_head" not in k]  # tied to the embeddings
    if missing:
        raise RuntimeError(f"gathered state lacks {len(missing)} weights, e.g. {missing[:3]}")
    return model


def save_servable(
    engine: Any, cfg: TrainJobConfig, tokenizer: Any, dtype: torch.dtype, out: Path
) -> None:
    """Write `out` as a plain HF directory that vLLM and transformers load without PEFT."""
    module = _final_module(engine, cfg)
    if module is None:
        return
    if cfg.mode == "lora":
        module = module.merge_and_unload()
    module = module.to(dtype)
    module.config.use_cache = True
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    module.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
