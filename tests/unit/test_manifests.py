"""Manifest builders: every object for the complete example is valid Kubernetes, owned,
labelled, scheduled as the spec says, non-root, and carries secrets only by reference."""

from __future__ import annotations

import base64
import json
from typing import Any

import kubernetes_validate
import pytest

from rft_operator.api import RFTRunSpec, RFTRunStatus
from rft_operator.jobconfigs import score_config, serve_config, train_config
from rft_operator.layout import cluster_layout
from rft_operator.manifests import (
    RunRef,
    build_sampler_deployment,
    build_sampler_service,
    build_score_job,
    build_train_job,
    build_train_service,
)
from rft_runtime.config.jobs import ScoreJobConfig, TrainJobConfig
from rft_runtime.config.paths import TRAIN_MASTER_PORT
from rft_runtime.train.__main__ import single_process_world

from ..conftest import ROOT, load_yaml

RUN = RunRef(name="math-qwen-dpo", namespace="ml-team", uid="0b3c-uid")
K8S_VERSION = "1.33"


def objects_for(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = RFTRunSpec.model_validate(manifest["spec"])
    status = RFTRunStatus()
    layout = cluster_layout(RUN.name, RUN.namespace, spec)
    return [
        build_sampler_deployment(RUN, spec, 1, serve_config(spec, status, 1, layout)),
        build_sampler_service(RUN, 1),
        build_score_job(RUN, spec, 1, score_config(spec, RUN.name, 1, layout)),
        build_train_job(RUN, spec, 1, train_config(spec, status, RUN.name, 1, layout)),
        build_train_service(RUN, 1),
    ]


@pytest.fixture(params=["complete.yaml", "minimal.yaml", "arith-grpo.yaml"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return objects_for(load_yaml(ROOT / "examples" / request.param))


def test_every_object_is_valid_kubernetes(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_an_invalid_object_would_be_caught() -> None:
    job = objects_for(load_yaml(ROOT / "examples" / "minimal.yaml"))[2]
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_names_owner_and_labels(objects: list[dict[str, Any]]) -> None:
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert names == [
        ("Deployment", "math-qwen-dpo-it1-sampler"),
        ("Service", "math-qwen-dpo-it1-sampler"),
        ("Job", "math-qwen-dpo-it1-score"),
        ("Job", "math-qwen-dpo-it1-train"),
        ("Service", "math-qwen-dpo-it1-train"),
    ]
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "ml-team"
        [owner] = meta["ownerReferences"]
        assert owner == {
            "apiVersion": "rft.dev/v1alpha1",
            "kind": "RFTRun",
            "name": "math-qwen-dpo",
            "uid": "0b3c-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert meta["labels"]["rft.dev/run"] == "math-qwen-dpo"
        assert meta["labels"]["rft.dev/iteration"] == "1"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "rft-operator"
        assert len(meta["name"]) <= 63


def pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "Job")]


def test_pods_run_non_root_without_privileges(objects: list[dict[str, Any]]) -> None:
    for pod in pods(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}


def test_scheduling_fields_of_the_complete_example() -> None:
    objects = objects_for(load_yaml(ROOT / "examples" / "complete.yaml"))
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            assert obj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-gpus"
    for pod in pods(objects):
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert pod["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
        assert pod["priorityClassName"] == "batch-high"
        assert pod["serviceAccountName"] == "rft-runner"
        assert pod["imagePullSecrets"] == [{"name": "ghcr"}]
    deployment, _, _, train, _ = objects
    sampler = deployment["spec"]["template"]["spec"]["containers"][0]
    assert sampler["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert sampler["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert deployment["spec"]["replicas"] == 2
    assert (
        train["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        == "8"
    )


def test_training_job_is_an_indexed_multi_node_deepspeed_job() -> None:
    objects = objects_for(load_yaml(ROOT / "examples" / "complete.yaml"))
    train, service = objects[3], objects[4]
    spec = train["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    command = spec["template"]["spec"]["containers"][0]["command"]
    # several nodes: DeepSpeed's per-node launcher with the world layout (2 nodes x 8 GPUs)
    assert command[:4] == ["python", "-u", "-m", "deepspeed.launcher.launch"]
    world_arg = next(a for a in command if a.startswith("--world_info="))
    world = json.loads(base64.urlsafe_b64decode(world_arg.split("=", 1)[1]))
    assert [len(slots) for slots in world.values()] == [8, 8]
    assert "--node_rank=$(JOB_COMPLETION_INDEX)" in command
    assert command[-4:-2] == ["--module", "rft_runtime.train"]
    assert "--master_addr=math-qwen-dpo-it1-train-0.math-qwen-dpo-it1-train.ml-team.svc" in command


def env_of(obj: dict[str, Any]) -> dict[str, Any]:
    container = obj["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def test_job_config_travels_as_json_and_secrets_only_by_reference() -> None:
    objects = objects_for(load_yaml(ROOT / "examples" / "complete.yaml"))
    score = env_of(objects[2])
    config = ScoreJobConfig.model_validate_json(score["RFT_JOB_CONFIG"]["value"])
    assert config.teacher is not None and config.teacher.api_key_env == "RFT_TEACHER_API_KEY"
    assert score["RFT_TEACHER_API_KEY"] == {
        "name": "RFT_TEACHER_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "llm-gateway", "key": "api-key"}},
    }
    train = TrainJobConfig.model_validate_json(env_of(objects[3])["RFT_JOB_CONFIG"]["value"])
    assert train.method == "dpo" and train.deepspeed.zero_stage == 3
    assert train.output_dir == "/mnt/rft/team-a/math-qwen-dpo/it-1"
    assert train.resume_optimizer_from is None  # LoRA: each iteration trains a new adapter
    for obj in objects:
        assert "api-key" not in json.dumps(obj).replace('"key": "api-key"', "")


def test_input_claims_are_mounted_read_only() -> None:
    objects = objects_for(load_yaml(ROOT / "examples" / "minimal.yaml"))
    pod = objects[2]["spec"]["template"]["spec"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"].get("readOnly")
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"rft-runs": None, "models": True, "data": True}
    config = ScoreJobConfig.model_validate_json(env_of(objects[2])["RFT_JOB_CONFIG"]["value"])
    assert config.train is not None and config.train.path == "/mnt/pvc/data/arith/train.jsonl"


def test_one_training_process_runs_without_a_launcher_and_several_use_the_deepspeed_cli() -> None:
    manifest = load_yaml(ROOT / "examples" / "minimal.yaml")
    train = objects_for(manifest)[3]
    command = train["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:5] == ["python", "-u", "-m", "rft_runtime.train", "--config"]
    assert f"--master_port={TRAIN_MASTER_PORT}" in command
    assert train["spec"]["completions"] == 1
    manifest["spec"].setdefault("training", {})["gpusPerNode"] = 2
    train = objects_for(manifest)[3]
    command = train["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "deepspeed" and "--num_gpus=2" in command


def test_a_training_process_without_a_launcher_sets_a_world_of_one_itself() -> None:
    world = dict(single_process_world({}, "run-it0-train-0.run-it0-train.ns.svc", 29500))
    assert world == {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_SIZE": "1",
        "MASTER_ADDR": "run-it0-train-0.run-it0-train.ns.svc",
        "MASTER_PORT": "29500",
    }
    assert single_process_world({"RANK": "1"}, "x", 1) == []  # a launcher set the world


def test_judge_keys_and_reward_models_reach_the_scoring_pod() -> None:
    manifest = load_yaml(ROOT / "examples" / "minimal.yaml")
    manifest["spec"]["rewards"] = [
        {"name": "answer", "type": "math"},
        {
            "name": "style",
            "type": "judge",
            "weight": 0.2,
            "judge": {
                "url": "https://judge/v1",
                "model": "big",
                "rubric": "Is it polite?",
                "apiKeySecretRef": {"name": "judge-secret", "key": "token"},
            },
        },
        {"name": "rm", "type": "orm", "weight": 0.5, "model": "pvc://reward-models/orm-1"},
    ]
    score = objects_for(manifest)[2]
    env = env_of(score)
    assert env["RFT_JUDGE_API_KEY_STYLE"]["valueFrom"] == {
        "secretKeyRef": {"name": "judge-secret", "key": "token"}
    }
    config = ScoreJobConfig.model_validate_json(env["RFT_JOB_CONFIG"]["value"])
    assert config.rewards[2].model == "file:///mnt/pvc/reward-models/orm-1"
    pod = score["spec"]["template"]["spec"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert "reward-models" in claims
    kubernetes_validate.validate(score, K8S_VERSION, strict=True)


def test_sandbox_settings_reach_only_the_scoring_container_of_sandboxed_runs() -> None:
    """Runtime pods mount no service-account token; a run with `code` rewards gives the
    scoring container what bubblewrap needs, validated against the Kubernetes schema."""
    manifest = load_yaml(ROOT / "examples" / "minimal.yaml")
    plain = objects_for(manifest)
    for pod in pods(plain):
        assert pod["automountServiceAccountToken"] is False
        assert "runtimeClassName" not in pod
        for container in pod["containers"]:
            assert "seccompProfile" not in container["securityContext"]
    manifest["spec"]["rewards"] = [{"name": "tests", "type": "code", "answerField": "tests"}]
    manifest["spec"].setdefault("runtime", {})["runtimeClassName"] = "gvisor"
    manifest["spec"]["runtime"]["sandbox"] = {
        "seccompProfile": "Localhost",
        "localhostProfile": "profiles/rft-sandbox.json",
    }
    objects = objects_for(manifest)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for pod in pods(objects):
        assert pod["runtimeClassName"] == "gvisor"
    score = next(o for o in objects if o["metadata"]["name"].endswith("-score"))
    context = score["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert context["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "profiles/rft-sandbox.json",
    }
    assert context["appArmorProfile"] == {"type": "Unconfined"}
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_each_iteration_asks_for_its_own_window_of_the_training_prompts() -> None:
    for per_iteration in (7, None):
        manifest = load_yaml(ROOT / "examples" / "minimal.yaml")
        if per_iteration:
            manifest["spec"]["data"]["promptsPerIteration"] = per_iteration
        spec = RFTRunSpec.model_validate(manifest["spec"])
        layout = cluster_layout(RUN.name, RUN.namespace, spec)
        for k in (0, 2):
            job = build_score_job(RUN, spec, k, score_config(spec, RUN.name, k, layout))
            config = ScoreJobConfig.model_validate_json(env_of(job)["RFT_JOB_CONFIG"]["value"])
            assert config.train is not None
            assert (config.train.per_iteration, config.train.iteration) == (per_iteration, k)
    grpo = load_yaml(ROOT / "examples" / "arith-grpo.yaml")
    grpo["spec"]["data"]["promptsPerIteration"] = 64
    spec = RFTRunSpec.model_validate(grpo["spec"])
    layout = cluster_layout(RUN.name, RUN.namespace, spec)
    train = train_config(spec, RFTRunStatus(), RUN.name, 1, layout)
    assert train.grpo is not None
    assert (train.grpo.prompts.per_iteration, train.grpo.prompts.iteration) == (64, 1)
