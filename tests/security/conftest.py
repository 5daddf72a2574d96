"""The security suite replays attacks against REAL services: it reuses the integration
fixtures (``vaultside serve --dev`` in a subprocess, a dedicated dockerd)."""

from __future__ import annotations

from tests.integration.conftest import busybox_image, docker_engine, vaultside_server

__all__ = ["busybox_image", "docker_engine", "vaultside_server"]
