"""Detectors: pure functions from bytes to candidate secrets."""
