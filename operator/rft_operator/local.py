"""`rft run FILE --local`: the operator's plan, carried out as local processes.

The same planner and the same container commands as on a cluster: the sampler is a local
server process, the scoring and training Jobs are processes. Everything lives in a work
directory; the status is saved after every step, finished jobs are recorded, so running
the same command again resumes where it stopped (finished stages are not redone).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rft_runtime.commands import score_command, serve_command, train_command
from rft_runtime.models import cache_root

from .api import RFTRun, RFTRunStatus
from .conditions import now
from .layout import Layout
from .planner import (
    Child,
    ChildKind,
    Delete,
    Event,
    ResumeChild,
    Run,
    StartSampler,
    StartScoreJob,
    StartTrainJob,
    SuspendChild,
    failure_text,
    plan,
)

STATUS_FILE = "status.json"
CHILDREN_FILE = "children.json"
TIMINGS_FILE = "timings.json"  # sampler start-up and job wall times, for the benchmark


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def release_build_locks(since: float) -> None:
    """A training process killed while DeepSpeed JIT-compiles an op leaves torch's build
    lock file behind, and the resumed run would wait on it forever: remove the locks that
    the killed process created (pods start from a clean filesystem; local runs do not)."""
    roots = [Path.home() / ".cache" / "torch_extensions"]
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        roots.append(Path(os.environ["TORCH_EXTENSIONS_DIR"]))
    for root in roots:
        for lock in [*root.glob("*/lock"), *root.glob("*/*/lock")]:
            with contextlib.suppress(OSError):
                if lock.stat().st_mtime >= since - 1:
                    lock.unlink()


def write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def local_layout(workdir: Path, manifest_dir: Path, claims: dict[str, str]) -> Layout:
    """pvc://models/... is the model cache (`rft models prepare`); any other claim is the
    folder of that name next to the manifest, unless `--pvc CLAIM=DIR` says otherwise."""
    dirs = {"models": str(cache_root() / "models")}
    for entry in manifest_dir.iterdir() if manifest_dir.is_dir() else []:
        if entry.is_dir():
            dirs.setdefault(entry.name, str(entry.resolve()))
    dirs.update(claims)
    return Layout(run_dir=str(workdir.resolve()), claim_dirs=dirs)


@dataclass
class Process:
    name: str
    kind: ChildKind
    index: int
    popen: subprocess.Popen[bytes]
    log: Path
    termination: Path
    url: str | None = None
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    ready_after: float | None = None


@dataclass
class LocalExecutor:
    manifest: Path
    workdir: Path
    claims: dict[str, str] = field(default_factory=dict)
    poll_seconds: float = 1.0
    echo: Callable[[str], None] = print
    processes: dict[str, Process] = field(default_factory=dict)
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopping: bool = False

    def __post_init__(self) -> None:
        from .validation import load_documents

        [document] = load_documents(self.manifest)
        self.run = RFTRun.model_validate(document)
        self.name = self.run.metadata.name or self.manifest.stem
        self.workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("configs", "logs", "termination"):
            (self.workdir / sub).mkdir(exist_ok=True)
        self.layout = local_layout(self.workdir, self.manifest.parent.resolve(), self.claims)
        self.status = self._load_status()
        self.finished: dict[str, dict[str, Any]] = self._load(CHILDREN_FILE, {})
        self.timings = self._load(TIMINGS_FILE, {})
        shutil.copyfile(self.manifest, self.workdir / "manifest.yaml")

    # -- persistence ---------------------------------------------------------------------

    def _load(self, name: str, default: Any) -> Any:
        path = self.workdir / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default

    def _load_status(self) -> RFTRunStatus:
        return RFTRunStatus.model_validate(self._load(STATUS_FILE, {}))

    def _save(self) -> None:
        write_json_atomic(self.workdir / STATUS_FILE, self.status.to_wire())
        write_json_atomic(self.workdir / CHILDREN_FILE, self.finished)
        write_json_atomic(self.workdir / TIMINGS_FILE, self.timings)

    # -- observing -----------------------------------------------------------------------

    def observe(self) -> dict[str, Child]:
        children: dict[str, Child] = {}
        for name, saved in self.finished.items():
            children[name] = Child(
                name,
                saved["kind"],
                saved["index"],
                saved["phase"],
                summary=saved.get("summary"),
                message=saved.get("message", ""),
            )
        for name, proc in list(self.processes.items()):
            code = proc.popen.poll()
            if proc.kind == "sampler":
                if code is not None:
                    children[name] = Child(
                        name,
                        "sampler",
                        proc.index,
                        "Failed",
                        message=f"exited with {code}; {self._tail(proc)}",
                    )
                else:
                    ready = proc.ready_after is not None or (
                        proc.url is not None and self._healthy(proc.url)
                    )
                    if ready and proc.ready_after is None:
                        proc.ready_after = round(time.monotonic() - proc.started, 1)
                        self.timings[name] = {"kind": "sampler", "ready_seconds": proc.ready_after}
                    children[name] = Child(
                        name, "sampler", proc.index, "Ready" if ready else "Pending"
                    )
                continue
            if code is None:
                children[name] = Child(name, proc.kind, proc.index, "Running")
                continue
            summary = self._termination(proc)
            record: dict[str, Any] = {
                "kind": proc.kind,
                "index": proc.index,
                "wall_seconds": round(time.monotonic() - proc.started, 1),
            }
            if code == 0:
                record.update(phase="Succeeded", summary=summary)
            else:
                record.update(
                    phase="Failed",
                    message=failure_text(summary, f"exit code {code}; {self._tail(proc)}"),
                )
            self.finished[name] = record
            self.timings[name] = {
                "kind": proc.kind,
                "wall_seconds": record["wall_seconds"],
                "phase": record["phase"],
            }
            del self.processes[name]
            children[name] = Child(
                name,
                proc.kind,
                proc.index,
                record["phase"],
                summary=record.get("summary"),
                message=record.get("message", ""),
            )
        return children

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    @staticmethod
    def _termination(proc: Process) -> dict[str, Any] | None:
        try:
            value = json.loads(proc.termination.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    @staticmethod
    def _tail(proc: Process, lines: int = 5) -> str:
        try:
            text = proc.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])[-600:] + f" (log: {proc.log})"

    # -- acting --------------------------------------------------------------------------

    def start(
        self,
        name: str,
        kind: ChildKind,
        index: int,
        config: Any,
        command: Callable[[str], list[str]],
        echo_output: bool,
    ) -> Process:
        config_path = self.workdir / "configs" / f"{name}.json"
        write_json_atomic(config_path, json.loads(config.model_dump_json(by_alias=True)))
        termination = self.workdir / "termination" / f"{name}.json"
        termination.unlink(missing_ok=True)
        log = self.workdir / "logs" / f"{name}.log"
        env = {
            **os.environ,
            "RFT_TERMINATION_LOG": str(termination),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        handle = log.open("ab")
        popen = subprocess.Popen(
            command(str(config_path)),
            stdout=subprocess.PIPE if echo_output else handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        if echo_output and popen.stdout is not None:
            threading.Thread(
                target=self._pump, args=(popen.stdout, handle, name), daemon=True
            ).start()
        proc = Process(name, kind, index, popen, log, termination)
        self.processes[name] = proc
        return proc

    def _pump(self, stream: IO[bytes], handle: IO[bytes], name: str) -> None:
        for raw in iter(stream.readline, b""):
            handle.write(raw)
            handle.flush()
            line = raw.decode("utf-8", errors="replace").rstrip()
            if line:
                self.echo(f"  [{name}] {line[-300:]}")

    def execute(self, action: Any) -> None:
        python = sys.executable
        launcher = str(Path(python).parent / "deepspeed")
        match action:
            case StartSampler(name=name, index=index, config=config):
                port = free_port()
                config = config.model_copy(update={"port": port, "host": "127.0.0.1"})
                proc = self.start(
                    name,
                    "sampler",
                    index,
                    config,
                    lambda path: serve_command(path, python),
                    echo_output=False,
                )
                proc.url = f"http://127.0.0.1:{port}/v1"
                self.layout.sampler_urls[name] = proc.url
            case StartScoreJob(name=name, index=index, config=config):
                self.start(
                    name,
                    "score",
                    index,
                    config,
                    lambda path: score_command(path, python),
                    echo_output=True,
                )
            case StartTrainJob(name=name, index=index, config=config):

                def command(path: str) -> list[str]:
                    return train_command(
                        path,
                        nodes=1,
                        gpus_per_node=config.gpus_per_node,
                        master_port=free_port(),
                        launcher=launcher,
                    )

                self.start(name, "train", index, config, command, echo_output=True)
            case Delete(name=name) | SuspendChild(name=name):
                self.stop(name)
            case ResumeChild():
                pass  # a stopped local job is simply started again by the planner
            case Event(type=type_, reason=reason, message=message):
                marker = "!" if type_ == "Warning" else "-"
                self.echo(f"{marker} {reason}: {message}")

    def stop(self, name: str, grace: float = 30.0) -> None:
        """SIGTERM the child's process group, then SIGKILL whatever of it is left (a launcher
        may exit before the workers it started)."""
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait()
        if proc.kind == "train":
            release_build_locks(proc.started_wall)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name, grace=10.0)

    # -- the loop ------------------------------------------------------------------------

    def step(self) -> bool:
        """One observe → plan → act pass; True when the run has ended."""
        result = plan(
            Run(self.name, self.run.spec, self.status, generation=1),
            self.observe(),
            self.layout,
            now(),
        )
        for action in result.actions:
            self.execute(action)
        self.status = result.status
        self._save()
        return self.status.stage in ("Succeeded", "Failed", "Suspended")

    def run_until_done(self) -> RFTRunStatus:
        """Step until the run ends; Ctrl-C (or SIGTERM) stops every child and keeps state.

        SIGINT gets an explicit handler: a process started in the background by a
        non-interactive shell inherits SIGINT as ignored, and Python then never raises
        KeyboardInterrupt."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, _interrupt)
        try:
            while not self.step():
                time.sleep(self.poll_seconds)
        finally:
            self.stop_all()
            self._save()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.status
