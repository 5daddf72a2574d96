"""An in-memory StorageBackend (a real, small implementation) and auth fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from vaultside.clock import FakeClock
from vaultside.errors import ConflictError
from vaultside.storage.base import Delete, Op, Put, Record, StorageBackend


class MemoryStorage:
    """Dict-backed storage with global revisions, atomic batches and leases."""

    def __init__(self) -> None:
        self.data: dict[str, Record] = {}
        self._rev = 0
        self._locks: dict[str, tuple[str, float]] = {}
        self._mono = 0.0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get(self, key: str) -> Record | None:
        await asyncio.sleep(0)
        return self.data.get(key)

    def _check(self, key: str, expect: int | None) -> None:
        current = self.data[key].revision if key in self.data else 0
        if expect is not None and current != expect:
            raise ConflictError(f"revision mismatch at {key!r}")

    def _put(self, key: str, value: bytes, expect: int | None) -> int:
        self._check(key, expect)
        self._rev += 1
        self.data[key] = Record(bytes(value), self._rev)
        return self._rev

    def _delete(self, key: str, expect: int | None) -> bool:
        self._check(key, expect)
        return self.data.pop(key, None) is not None

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        await asyncio.sleep(0)
        return self._put(key, value, expect_revision)

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        await asyncio.sleep(0)
        return self._delete(key, expect_revision)

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        await asyncio.sleep(0)
        keys = sorted(k for k in self.data if k.startswith(prefix) and k > after)
        return keys if limit is None else keys[:limit]

    async def write_batch(self, ops: Sequence[Op]) -> None:
        await asyncio.sleep(0)
        for op in ops:  # check everything first: all or nothing
            self._check(op.key, op.expect_revision)
        saved = dict(self.data)
        try:
            for op in ops:
                if isinstance(op, Put):
                    self._put(op.key, op.value, op.expect_revision)
                else:
                    assert isinstance(op, Delete)
                    self._delete(op.key, op.expect_revision)
        except ConflictError:
            self.data = saved
            raise

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        cur = self._locks.get(name)
        if cur is None or cur[0] == holder or cur[1] <= self._mono:
            self._locks[name] = (holder, self._mono + ttl)
            return True
        return False

    async def unlock(self, name: str, holder: str) -> None:
        if self._locks.get(name, ("", 0.0))[0] == holder:
            del self._locks[name]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
