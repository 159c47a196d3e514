"""`rft validate`: malformed manifests exit non-zero with the field path and the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..conftest import ROOT

HEAD = """\
apiVersion: rft.dev/v1alpha1
kind: RFTRun
metadata: {name: bad-run}
"""
BASE_SPEC = """\
spec:
  model: {uri: pvc://models/m}
  data: {train: pvc://data/train.jsonl}
"""

# (id, manifest text, path that must be printed, fragment of the fix that must be printed)
MALFORMED = [
    (
        "wrong-type-int",
        HEAD + BASE_SPEC + "  iterations: {max: three}\n",
        "spec.iterations.max",
        "whole number",
    ),
    (
        "wrong-type-bool",
        HEAD + BASE_SPEC + "  suspend: sometimes\n",
        "spec.suspend",
        "true or false",
    ),
    (
        "unknown-field-typo",
        HEAD + BASE_SPEC + "  training: {learningrate: 0.001}\n",
        "spec.training.learningrate",
        "did you mean 'learningRate'",
    ),
    (
        "unknown-top-field",
        HEAD + BASE_SPEC + "  rewardz: []\n",
        "spec.rewardz",
        "did you mean 'rewards'",
    ),
    (
        "missing-model",
        HEAD + "spec:\n  data: {train: pvc://data/train.jsonl}\n",
        "spec.model",
        "add 'model'",
    ),
    (
        "missing-reward-type",
        HEAD + BASE_SPEC + "  rewards: [{name: answer}]\n",
        "spec.rewards[0].type",
        "add 'type'",
    ),
    (
        "negative-learning-rate",
        HEAD + BASE_SPEC + "  training: {learningRate: -0.1}\n",
        "spec.training.learningRate",
        "greater than 0",
    ),
    (
        "zero-iterations",
        HEAD + BASE_SPEC + "  iterations: {max: 0}\n",
        "spec.iterations.max",
        "at least 1",
    ),
    (
        "bad-model-uri",
        HEAD + "spec:\n  model: {uri: /models/m}\n  data: {train: pvc://d/t}\n",
        "spec.model.uri",
        "pvc://<claim>/<path>",
    ),
    (
        "bad-enum",
        HEAD + BASE_SPEC + "  training: {method: dpoo, }\n",
        "spec.training.method",
        "did you mean 'dpo'",
    ),
    (
        "dpo-without-rejected",
        HEAD + BASE_SPEC + "  training: {method: dpo}\n",
        "spec.filter.rejected",
        "set filter.rejected: lowest",
    ),
    (
        "teacher-without-model",
        HEAD + BASE_SPEC + "  sampler: {teacher: {url: https://x/v1}}\n",
        "spec.sampler.teacher.model",
        "name the model",
    ),
    (
        "schedule-length",
        HEAD + BASE_SPEC + "  iterations: {max: 2}\n  filter: {minRewardSchedule: [1.0]}\n",
        "spec.filter.minRewardSchedule",
        "equal iterations.max",
    ),
    (
        "stop-rule-without-eval",
        HEAD + BASE_SPEC + "  iterations: {stopAtEvalScore: 0.9}\n",
        "spec.iterations",
        "add evaluation.sets",
    ),
    (
        "offload-params-stage-2",
        HEAD + BASE_SPEC + "  training: {deepspeed: {zeroStage: 2, offloadParams: true}}\n",
        "spec.training.deepspeed.offloadParams",
        "set zeroStage: 3",
    ),
    (
        "name-too-long",
        HEAD.replace("bad-run", "r" * 41) + BASE_SPEC,
        "metadata.name",
        "choose a shorter name",
    ),
    (
        "wrong-kind",
        HEAD.replace("kind: RFTRun", "kind: Deployment") + BASE_SPEC,
        "kind",
        "set kind: RFTRun",
    ),
    (
        "secret-inline-not-ref",
        HEAD + BASE_SPEC + "  sampler: {teacher: {url: https://x/v1, model: m, apiKey: sk-123}}\n",
        "spec.sampler.teacher.apiKey",
        "did you mean 'apiKeySecretRef'",
    ),
]


def run_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rft_operator.cli", "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("manifest", "path", "fix"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_manifest_is_explained(
    tmp_path: Path, manifest: str, path: str, fix: str
) -> None:
    file = tmp_path / "run.yaml"
    file.write_text(manifest, encoding="utf-8")
    result = run_validate(file)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(path + ":"))
    assert lines[at + 1].strip().startswith("fix:")
    assert fix in lines[at + 1], result.stderr


def test_examples_are_valid() -> None:
    examples = sorted((ROOT / "examples").glob("*.yaml"))
    assert len(examples) >= 3
    result = run_validate(*examples)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("is valid") == len(examples)


def test_not_yaml_is_reported_without_traceback(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("spec: [unclosed\n", encoding="utf-8")
    result = run_validate(file)
    assert result.returncode == 1
    assert "not valid YAML" in result.stderr and "Traceback" not in result.stderr


def test_every_document_of_a_multi_document_file_is_checked(tmp_path: Path) -> None:
    good = (ROOT / "examples" / "minimal.yaml").read_text(encoding="utf-8")
    bad = HEAD + BASE_SPEC + "  iterations: {max: -1}\n"
    file = tmp_path / "two.yaml"
    file.write_text(good + "---\n" + textwrap.dedent(bad), encoding="utf-8")
    result = run_validate(file)
    assert result.returncode == 1
    assert "(document 1): RFTRun arith-minimal is valid" in result.stdout
    assert "(document 2): 1 problem" in result.stderr
