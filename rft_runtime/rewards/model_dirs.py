"""Loading local model directories for the model-based rewards (orm, prm, embedding).

A reward's `model` is a URI. The scoring Job can only open local files: `file://` URIs
(the operator rewrites `pvc://` ones to the path where it mounts the claim). Loaded
models are cached per process, so a Job loads each model once.
"""

from __future__ import annotations

import os
from pathlib import Path


class ModelUnavailable(Exception):
    """The configured model cannot be opened; the message names the field and the fix."""


def local_model_dir(uri: str, field: str = "rewards[].model") -> Path:
    """The local directory of a `file://` URI (or a plain path); pvc:// must be resolved first."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        path = Path(uri)
    elif scheme == "file":
        path = Path("/" + rest.lstrip("/"))
    else:
        raise ModelUnavailable(
            f"{field} {uri} is not a local path; the operator resolves pvc:// URIs to "
            "file:// paths in the job config, or use file:///<dir> with --local"
        )
    if not (path / "config.json").is_file():
        raise ModelUnavailable(
            f"{field} {uri}: {path} is not a Hugging Face model directory (no config.json); "
            "point it at a folder written by save_pretrained"
        )
    return path


def offline() -> None:
    """Never reach for the hub from a scoring Job."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
