"""vaultside test suite: unit/ (no services) and integration/ (real services)."""
