"""Reporters: table, JSON and SARIF renderings of findings."""
