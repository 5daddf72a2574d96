"""Re-use the integration fixtures (a real ``vaultside serve --dev`` per test).

Only ``vaultside_server`` is imported: importing a session fixture such as ``docker_engine``
here would start a second dockerd in a ``pytest tests`` session. Replays that need Docker
live in ``tests/integration`` (e.g. ``test_scan_targets.py``).
"""

from __future__ import annotations

from tests.integration.services.fixtures import vaultside_server

__all__ = ["vaultside_server"]
