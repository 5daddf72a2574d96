"""MemoryStorage: the conformance suite (through pytest and through the plain runner)."""

from __future__ import annotations

from tests.storage_conformance import each_check
from vaultside.clock import FakeClock
from vaultside.storage.base import LockInspector, StorageBackend
from vaultside.storage.conformance import CHECKS, Check, run_check, run_suite
from vaultside.storage.memory import MemoryStorage


async def _make(clock: FakeClock) -> StorageBackend:
    storage = MemoryStorage(clock=clock)
    await storage.open()
    return storage


async def _reopen(backend: StorageBackend) -> StorageBackend:
    await backend.close()
    await backend.open()  # the same instance is the same data
    return backend


@each_check
async def test_conformance(check: Check) -> None:
    await run_check(check, _make, _reopen)


async def test_runner_without_pytest_runs_every_check() -> None:
    assert len(CHECKS) >= 20
    assert await run_suite(_make, _reopen) == []


async def test_runner_reports_a_broken_backend() -> None:
    class ForgetfulStorage(MemoryStorage):
        async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
            return False

    async def make(clock: FakeClock) -> StorageBackend:
        return ForgetfulStorage(clock=clock)

    failed = dict(await run_suite(make, _reopen))
    assert "delete" in failed and "AssertionError" in failed["delete"]
    assert "get_missing" not in failed


def test_is_a_storage_backend_and_lock_inspector() -> None:
    assert isinstance(MemoryStorage(), StorageBackend)
    assert isinstance(MemoryStorage(), LockInspector)


async def test_lock_holder_follows_the_clock() -> None:
    clock = FakeClock()
    storage = MemoryStorage(clock=clock)
    assert await storage.try_lock("l", "a", 10)
    assert await storage.lock_holder("l") == ("a", clock.now() + 10)
    await clock.advance(10)
    assert await storage.lock_holder("l") is None
