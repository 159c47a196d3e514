"""The servable checkpoint: LoRA merged, init dtype, tokenizer + chat template, atomic rename.

`save_servable` ends training (it merges the adapter into the engine's module);
`save_policy_copy` writes the same folder while training goes on (GRPO publishes every
step's policy), leaving the engine's module untouched.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any, cast

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


def _replace_dir(tmp: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def merged_state_dict(module: Any, dtype: torch.dtype) -> tuple[Any, dict[str, torch.Tensor]]:
    """(the plain transformers model, its weights with each LoRA delta added), computed out
    of place: the adapter stays trainable. A plain model gives its own weights."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    base = module.get_base_model() if isinstance(module, PeftModel) else module
    weights: dict[str, torch.Tensor] = {}
    for key, value in base.state_dict().items():
        if "lora_" not in key:
            weights[key.replace(".base_layer.", ".")] = value.detach()
    with torch.no_grad():
        for name, layer in base.named_modules():
            if isinstance(layer, LoraLayer) and not layer.merged:
                key = f"{name}.weight"
                merged = weights[key].float()
                for adapter in layer.active_adapters:
                    delta: torch.Tensor = cast(Any, layer).get_delta_weight(adapter)
                    merged = merged + delta.float()
                weights[key] = merged
    state = {k: v.to(dtype).clone() for k, v in weights.items()}
    if getattr(base.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied to the embeddings; loaders re-tie it
    return base, state


def save_policy_copy(
    engine: Any, cfg: TrainJobConfig, tokenizer: Any, dtype: torch.dtype, out: Path
) -> None:
    """The current policy as a servable folder, without touching the training module (every
    rank must call this: ZeRO-3 gathers the shards)."""
    if cfg.deepspeed.zero_stage >= 3:  # _final_module builds a fresh copy on rank 0
        save_servable(engine, cfg, tokenizer, dtype, out)
        return
    if dist.get_rank() != 0:
        return
    model, state = merged_state_dict(engine.module, dtype)
    config = copy.deepcopy(model.config)
    config.use_cache = True
    config.dtype = dtype
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    _replace_dir(tmp, out)


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
    _replace_dir(tmp, out)
