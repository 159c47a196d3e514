"""A job's live progress: the file the local console reads and the gauges a pod serves."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rft_runtime import live
from rft_runtime.config import live as contract
from rft_runtime.config.env import METRICS_HOST_ENV, METRICS_PORT_ENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_reporter_writes_the_live_file_and_serves_gauges(tmp_path: Path) -> None:
    port = free_port()
    env = {METRICS_PORT_ENV: str(port), METRICS_HOST_ENV: "127.0.0.1"}
    reporter = live.Reporter(
        str(tmp_path / "live" / "train.json"), "train", "arith", 1, live.serve_gauges(env)
    )
    reporter.start("train", "steps", total=4, done=1)  # a resumed pod: step 1 was done before
    first = contract.LiveProgress.model_validate_json(
        (tmp_path / "live" / "train.json").read_text()
    )
    assert (first.done, first.total, first.resumed_at, first.finished) == (1, 4, 1, False)
    reporter.advance(2, tokens=300.0, loss=1.25)
    reporter.advance(4, tokens=300.0, loss=0.75)  # the last unit is always written
    state = contract.LiveProgress.model_validate_json(
        (tmp_path / "live" / "train.json").read_text()
    )
    assert (state.done, state.tokens, state.loss) == (4, 600.0, 0.75)
    assert state.eta_seconds == 0.0
    labels = (("component", "train"), ("iteration", "1"), ("phase", "train"), ("run", "arith"))
    metrics = scrape(port)
    assert metrics[(contract.PROGRESS_DONE, labels)] == 4
    assert metrics[(contract.PROGRESS_TOTAL, labels)] == 4
    assert metrics[(contract.TRAIN_LOSS, labels)] == 0.75
    assert metrics[(contract.TOKENS_PER_SECOND, labels)] > 0
    reporter.finish()
    done = contract.LiveProgress.model_validate_json((tmp_path / "live" / "train.json").read_text())
    assert done.finished


def test_without_a_port_or_a_path_nothing_is_served_or_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert live.serve_gauges({}) == {}
    monkeypatch.chdir(tmp_path)
    reporter = live.Reporter(None, "score", "r", 0)  # what an unconfigured process has
    reporter.start("sample", "prompts", total=2, done=0)
    reporter.advance(2, tokens=10.0)
    reporter.finish()
    assert reporter.state is not None and reporter.state.finished
    assert list(tmp_path.iterdir()) == []


def test_no_time_left_is_guessed_from_the_first_prompts() -> None:
    """With 32 requests in flight the first finished prompt says nothing about the pace."""

    def at(done: int) -> contract.LiveProgress:
        return contract.LiveProgress(
            job="score", run="r", iteration=2, phase="sample", unit="prompts",
            done=done, total=300, elapsed_seconds=8.0, updated=0.0,
        )  # fmt: skip

    assert at(1).eta_seconds is None and at(14).eta_seconds is None
    assert at(15).eta_seconds == pytest.approx(285 * 8.0 / 15)
