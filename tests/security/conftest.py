"""Re-use the integration fixtures (a real ``vaultside serve --dev`` per test)."""

from __future__ import annotations

from tests.integration.conftest import vaultside_server

__all__ = ["vaultside_server"]
