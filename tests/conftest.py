"""Suite-wide pytest hooks: tests using a service fixture get that service's marker.

So ``pytest -m "not docker"`` deselects everything that needs a Docker engine, without
every test module having to remember its markers.
"""

from __future__ import annotations

import pytest

_MARKER_FOR_FIXTURE = {
    "docker_engine": "docker",
    "busybox_image": "docker",
    "openbao": "openbao",
    "postgres": "postgres",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Add the ``docker``/``openbao``/``postgres`` marker to tests that use those fixtures."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for marker in {m for f, m in _MARKER_FOR_FIXTURE.items() if f in fixtures}:
            item.add_marker(getattr(pytest.mark, marker))
