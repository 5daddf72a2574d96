"""The ``vaultside`` command line."""
