"""`python -m rft_operator` runs the CLI."""

from .cli import main

main()
