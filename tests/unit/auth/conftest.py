"""Auth fixtures over the package's in-memory StorageBackend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vaultside.storage.base import StorageBackend
from vaultside.storage.memory import MemoryStorage


@pytest.fixture
def memory() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture(params=["memory", "sqlite"])
async def any_storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageBackend]:
    """The in-memory backend and, when it is importable, the real SQLite one."""
    if request.param == "memory":
        yield MemoryStorage()
        return
    sqlite = pytest.importorskip("vaultside.storage.sqlite")
    store: StorageBackend = sqlite.SqliteStorage(tmp_path / "auth.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()
