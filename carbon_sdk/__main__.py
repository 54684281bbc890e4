"""``python -m carbon_sdk`` runs the CLI."""

from carbon_sdk.cli import main

main()
