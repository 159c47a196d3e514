"""The scoring Job (`python -m rft_runtime.score --config FILE`)."""

from __future__ import annotations

from .job import run_job

__all__ = ["run_job"]
