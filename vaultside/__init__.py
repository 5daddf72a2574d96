"""vaultside: secrets-management sidecar and API service for containers."""

__version__ = "0.1.0"
