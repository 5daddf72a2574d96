"""Leak scanner: sources, detectors, filters, posture checks and reporters."""
