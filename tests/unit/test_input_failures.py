"""Bad input the API server admits still fails before any pod starts (InvalidSpec), and a
scoring Job that found bad data fails the run with reason InvalidData; `rft validate --data`
runs the scoring Job's data checks on this machine."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from rft_operator.actions import Child, Run, StartSampler, StartScoreJob
from rft_operator.api import RFTRunSpec, parse_spec
from rft_operator.cli import main
from rft_operator.layout import Layout
from rft_operator.planner import plan

NOW = "2026-01-01T00:00:00Z"
LAYOUT = Layout(run_dir="/mnt/rft/r", storage_claim="rft-runs")


def spec(**extra: object) -> RFTRunSpec:
    return parse_spec(
        {"model": {"uri": "pvc://models/m"}, "data": {"train": "pvc://data/t.jsonl"}, **extra}
    )


def failed(status: object) -> tuple[str, str]:
    conditions = {c.type: c for c in getattr(status, "conditions", None) or []}
    return conditions["Failed"].reason, conditions["Failed"].message


def test_a_regex_that_does_not_compile_fails_before_any_child() -> None:
    bad = spec(rewards=[{"name": "fmt", "type": "regex", "pattern": "(unclosed"}])
    result = plan(Run("r", bad, generation=1), {}, LAYOUT, NOW)
    assert result.of_type(StartSampler) == [] and result.of_type(StartScoreJob) == []
    assert result.status.stage == "Failed"
    reason, message = failed(result.status)
    assert reason == "InvalidSpec"
    assert message.startswith("spec.rewards[0].pattern: the regular expression does not compile")
    assert "fix the pattern" in message


def test_a_python_reward_without_reward_function_fails_with_invalid_spec() -> None:
    bad = spec(rewards=[{"name": "p", "type": "python", "source": "x = 1\n"}])
    reason, message = failed(plan(Run("r", bad, generation=1), {}, LAYOUT, NOW).status)
    assert reason == "InvalidSpec" and "spec.rewards[0].source" in message


def test_a_good_spec_starts_its_sampler() -> None:
    assert plan(Run("r", spec(), generation=1), {}, LAYOUT, NOW).of_type(StartSampler)


def test_invalid_data_from_the_scoring_job_is_the_failed_reason() -> None:
    run = Run("r", spec(), generation=1)
    children = {
        "r-sampler": Child("r-sampler", "sampler", 0, "Ready"),
        "r-it0-score": Child(
            "r-it0-score", "score", 0, "Failed", message="InvalidData: 1 data problem in t.jsonl"
        ),
    }
    reason, message = failed(plan(run, children, LAYOUT, NOW).status)
    assert reason == "InvalidData" and "t.jsonl" in message


def test_validate_data_checks_the_files_the_manifest_names(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(
        '{"prompt": "1+1?", "answer": "2"}\n{"prompt": "2+2?"}\n', encoding="utf-8"
    )
    (tmp_path / "data" / "eval.jsonl").write_bytes(b'{"prompt": "caf\xe9", "answer": "1"}\n')
    manifest = {
        "apiVersion": "rft.dev/v1alpha1",
        "kind": "RFTRun",
        "metadata": {"name": "data-run"},
        "spec": {
            "model": {"uri": "pvc://models/m"},
            "data": {"train": "pvc://data/train.jsonl"},
            "evaluation": {"sets": [{"name": "main", "uri": "pvc://data/eval.jsonl"}]},
        },
    }
    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    assert CliRunner().invoke(main, ["validate", str(file)]).exit_code == 0
    result = CliRunner().invoke(main, ["validate", "--data", str(file)])
    assert result.exit_code == 1
    assert "2 data problems" in result.output
    assert "train.jsonl:2: answer: missing" in result.output
    assert "eval.jsonl:1: (line): not valid UTF-8" in result.output
    (tmp_path / "data" / "train.jsonl").write_text('{"prompt": "a", "answer": "b"}\n')
    (tmp_path / "data" / "eval.jsonl").write_text('{"prompt": "c", "answer": "d"}\n')
    result = CliRunner().invoke(main, ["validate", "--data", str(file)])
    assert result.exit_code == 0 and "(data checked)" in result.output
