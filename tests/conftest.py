"""Suite-wide hooks and the fixtures shared by every test package.

Hooks: tests using a service fixture get that service's marker, so ``pytest -m "not docker"``
deselects everything that needs a Docker engine, without every test module having to remember
its markers.

Fixtures (a conftest below may override one, e.g. ``rotation`` starts its clock at a date):

- ``clock``: a ``FakeClock`` at its default start.
- ``key_file``: a fresh random root key file, ``tmp_path / "root.key"``.
- ``barrier``: an opened, unsealed ``Barrier`` over SQLite in ``tmp_path`` (``BARRIER_DB``),
  sealed by ``key_file``; closed after the test.
- ``tokens``: a ``TokenStore`` over ``barrier``'s ``tokens`` view on ``clock``; ``root``: a
  root token's ``TokenInfo`` from it (holds every capability).

The suite's ``XDG_CACHE_HOME`` is a temporary directory (``pytest_configure``): the scanner's
keyword-database cache of a test run never lands in the user's ``~/.cache``.

Plain helpers (key files for ``Settings``, a barrier over a given storage) are in
``tests/stores.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.stores import BARRIER_DB, new_key_file, open_barrier
from vaultside.auth.records import TokenInfo
from vaultside.auth.tokens import TokenStore
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.storage.sqlite import SqliteStorage
from vaultside.wiring.keyspace import view

_MARKER_FOR_FIXTURE = {
    "docker_engine": "docker",
    "busybox_image": "docker",
    "openbao": "openbao",
    "postgres": "postgres",
}


_CACHE_DIR: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Point ``XDG_CACHE_HOME`` (inherited by every process the tests start) at a temp dir."""
    _CACHE_DIR.append(tempfile.mkdtemp(prefix="vs-test-cache-"))
    os.environ["XDG_CACHE_HOME"] = _CACHE_DIR[-1]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the suite's cache directory."""
    for path in _CACHE_DIR:
        shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Add the ``docker``/``openbao``/``postgres`` marker to tests that use those fixtures."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for marker in {m for f, m in _MARKER_FOR_FIXTURE.items() if f in fixtures}:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at its default start."""
    return FakeClock()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A fresh random root key file in ``tmp_path``."""
    return new_key_file(tmp_path / "root.key")


@pytest.fixture
async def barrier(tmp_path: Path, key_file: Path) -> AsyncIterator[Barrier]:
    """An opened, unsealed barrier over SQLite in ``tmp_path``, closed after the test."""
    b = await open_barrier(SqliteStorage(tmp_path / BARRIER_DB), key_file)
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def tokens(barrier: Barrier, clock: FakeClock) -> TokenStore:
    """A token store over ``barrier``'s ``tokens`` view (as wiring hands it out)."""
    return TokenStore(view(barrier, "tokens"), clock=clock)


@pytest.fixture
async def root(tokens: TokenStore) -> TokenInfo:
    """A root token's info: holds every capability."""
    return (await tokens.create_root())[1]
