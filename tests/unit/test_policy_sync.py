"""The long-lived sampler's policy hand-over without a server: the files both sides share,
the wait and its timeout, and where a (re)started sampler starts. The reload itself, on the
real server, is in tests/runtime/test_score_server.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rft_runtime.config.jobs import ServeConfig
from rft_runtime.policy_sync import (
    PolicyNotLoaded,
    pods_serving,
    record_loaded,
    request_policy,
    requested_policy,
    wait_until_served,
)
from rft_runtime.serve import PolicyWatcher, vllm_args, vllm_env


def model_arg(config: ServeConfig) -> str:
    args = vllm_args(config)
    return dict(zip(args[3::2], args[4::2], strict=False))["--model"]


def test_a_restarted_sampler_starts_on_the_policy_last_asked_for(tmp_path: Path) -> None:
    policy_file = tmp_path / "sampler" / "policy.json"
    checkpoint = tmp_path / "it-0" / "checkpoint"
    checkpoint.mkdir(parents=True)
    config = ServeConfig(model_path="/base", policy_file=str(policy_file), loaded_dir="/x")
    assert model_arg(config) == "/base"
    request_policy(policy_file, str(checkpoint))
    # asked for, but not written yet (no config.json): the configured model, not a crash loop
    assert model_arg(config) == "/base"
    (checkpoint / "config.json").write_text("{}")
    assert model_arg(config) == str(checkpoint)
    assert vllm_env(config, {})["VLLM_SERVER_DEV_MODE"] == "1"
    assert "VLLM_SERVER_DEV_MODE" not in vllm_env(ServeConfig(model_path="/m"), {})


def test_the_wait_ends_when_every_replica_serves_the_policy(tmp_path: Path) -> None:
    policy_file, loaded = tmp_path / "policy.json", tmp_path / "loaded"
    record_loaded(loaded, "pod-a", "/old", 0.0)
    ticks: list[float] = []

    def sleep(seconds: float) -> None:  # the pods load the policy while the Job waits
        ticks.append(seconds)
        assert requested_policy(policy_file) == "/new"
        record_loaded(loaded, f"pod-{len(ticks)}", "/new", 1.0)

    clock = iter(range(100))
    waited = wait_until_served(
        str(policy_file), str(loaded), "/new", 2, 60, sleep, lambda: float(next(clock)), str
    )
    assert len(ticks) == 2 and waited > 0
    assert pods_serving(loaded, "/new") == ["pod-1", "pod-2"] and pods_serving(loaded, "/x") == []


def test_the_wait_fails_with_a_message_naming_the_policy(tmp_path: Path) -> None:
    clock = iter(float(t) for t in range(0, 1000, 10))
    notes: list[str] = []
    with pytest.raises(PolicyNotLoaded, match=r"did not load /new within 30 s \(0/1 pods"):
        wait_until_served(
            str(tmp_path / "p.json"),
            str(tmp_path / "loaded"),
            "/new",
            1,
            30,
            lambda _: None,
            lambda: next(clock),
            notes.append,
        )
    assert notes and "/new" in notes[0]


def test_asking_twice_for_the_same_policy_does_not_rewrite_the_file(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.json"
    request_policy(policy_file, "/p1")
    first = policy_file.read_text()
    request_policy(policy_file, "/p1")
    assert policy_file.read_text() == first
    request_policy(policy_file, "/p2")
    assert requested_policy(policy_file) == "/p2"
    policy_file.write_text("not json")
    assert requested_policy(policy_file) is None


class Answer:
    status_code = 200

    def raise_for_status(self) -> None:
        return None


class Server:
    """The two HTTP calls the watcher makes, recorded (the reload itself is tested on the
    real vLLM server in tests/runtime/test_score_server.py)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []

    def get(self, path: str) -> Answer:
        return Answer()

    def post(self, path: str, json: Any = None) -> Answer:
        self.posts.append((path, json))
        return Answer()


def watched(tmp_path: Path) -> ServeConfig:
    """A long-lived sampler's config whose policy file and loaded folder are in tmp_path."""
    return ServeConfig(
        model_path="/base",
        policy_file=str(tmp_path / "policy.json"),
        loaded_dir=str(tmp_path / "loaded"),
    )


def test_a_policy_asked_for_while_the_server_starts_is_loaded_not_just_reported(
    tmp_path: Path,
) -> None:
    """The race seen in the end-to-end run: the sampler started on policy A; the next scoring
    Job asked for B before the server was up. B must be loaded, not reported as loaded."""
    config = watched(tmp_path)
    request_policy(config.policy_file or "", "/a")
    watcher = PolicyWatcher(config, "pod-1", started_on="/a")
    request_policy(config.policy_file or "", "/b")  # while vLLM is still starting
    server = Server()
    watcher.step(server)  # type: ignore[arg-type]
    assert [path for path, _ in server.posts] == ["/collective_rpc", "/reset_prefix_cache"]
    assert server.posts[0][1]["kwargs"] == {"weights_path": "/b"}
    assert pods_serving(tmp_path / "loaded", "/b") == ["pod-1"]
    watcher.step(server)  # nothing new asked: nothing reloaded
    assert len(server.posts) == 2


def test_a_server_started_on_the_asked_policy_reports_it_without_a_reload(tmp_path: Path) -> None:
    config = watched(tmp_path)
    request_policy(config.policy_file or "", "/a")
    watcher = PolicyWatcher(config, "pod-1", started_on="/a")
    server = Server()
    watcher.step(server)  # type: ignore[arg-type]
    assert server.posts == [] and pods_serving(tmp_path / "loaded", "/a") == ["pod-1"]
