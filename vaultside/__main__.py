"""Entry point for ``python -m vaultside``."""

from vaultside.cli.main import main

main()
