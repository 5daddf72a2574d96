"""Sources: where the bytes to scan come from."""
