"""`python -m rft_runtime.score --config FILE`: exit 0 with a ScoreSummary on the termination
log, or non-zero with a FailureSummary that names what to fix."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from .. import live
from ..config.jobs import FailureSummary, ScoreJobConfig, load_config
from ..config.paths import IterationPaths
from ..config.termination import INVALID_DATA, write_termination
from ..datacheck import InvalidData
from ..rewards.sandbox import SandboxUnavailable, require_for
from .client import EndpointRejected, EndpointUnreachable, MissingApiKey
from .data import PromptsUnreadable
from .job import run_job


def fail(reason: str, message: str) -> int:
    print(f"rft score failed: {reason}: {message}", file=sys.stderr, flush=True)
    write_termination(FailureSummary(reason=reason, message=message))
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rft_runtime.score", description=__doc__)
    parser.add_argument("--config", required=True, help="ScoreJobConfig JSON file")
    args = parser.parse_args(argv)
    try:
        config = load_config(ScoreJobConfig, args.config)
    except (OSError, ValidationError) as exc:
        return fail("InvalidConfig", str(exc))
    live.configure(
        IterationPaths(config.output_dir).live("score"), "score", config.run, config.iteration
    )
    try:
        require_for(reward.type for reward in config.rewards)
    except SandboxUnavailable as exc:
        return fail("SandboxUnavailable", str(exc))
    try:
        summary = asyncio.run(run_job(config))
    except EndpointUnreachable as exc:
        return fail("EndpointUnreachable", str(exc))
    except EndpointRejected as exc:
        return fail("EndpointRejected", str(exc))
    except MissingApiKey as exc:
        return fail("MissingApiKey", str(exc))
    except InvalidData as exc:
        return fail(INVALID_DATA, str(exc))
    except PromptsUnreadable as exc:
        return fail("PromptsUnreadable", str(exc))
    except Exception as exc:  # the pod must still say why it failed
        return fail("ScoringFailed", f"{type(exc).__name__}: {exc}")
    write_termination(summary)
    print(summary.model_dump_json(by_alias=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
