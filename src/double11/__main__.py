"""`python -m double11` runs the CLI."""

from double11.cli import main

main()
