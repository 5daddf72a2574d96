"""StorageView: the conformance suite through a view, confinement, and unchanged stored keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.storage_conformance import each_check
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.seal import FileSeal, init_key_file
from vaultside.errors import InvalidRequestError
from vaultside.storage.base import Delete, LockInspector, Put, StorageBackend
from vaultside.storage.conformance import Check, run_check
from vaultside.storage.memory import MemoryStorage
from vaultside.storage.sqlite import SqliteStorage
from vaultside.storage.view import StorageView

# Neighbours of the view ``app/``: none of them may ever show through it.
NEIGHBOURS = ("ap", "app", "app0/x", "apo/x", "apq/x", "b/app/x", "")


async def _reopen(backend: StorageBackend) -> StorageBackend:
    return backend  # the view owns nothing; the memory below keeps its data


@each_check
async def test_conformance_over_memory(check: Check) -> None:
    async def make(clock: FakeClock) -> StorageBackend:
        below = MemoryStorage(clock=clock)
        for key in NEIGHBOURS:
            await below.put(key or "zz", b"neighbour")
        return StorageView(below, "app/")

    await run_check(check, make, _reopen)


@each_check
async def test_conformance_over_the_barrier(check: Check, tmp_path: Path) -> None:
    init_key_file(tmp_path / "root.key")
    barriers: list[Barrier] = []  # the views own nothing: the test closes what it opened

    async def barrier(clock: FakeClock | None = None) -> Barrier:
        opened = Barrier(SqliteStorage(tmp_path / "vs.db", clock=clock), FileSeal(key_file))
        barriers.append(opened)
        await opened.open()
        await opened.unseal()
        return opened

    async def make(clock: FakeClock) -> StorageBackend:
        below = await barrier(clock)
        await below.put("svc/apq", b"neighbour")
        return StorageView(below, "svc/a/")

    async def reopen(backend: StorageBackend) -> StorageBackend:
        await barriers[-1].close()
        return StorageView(await barrier(), "svc/a/")

    key_file = tmp_path / "root.key"
    try:
        await run_check(check, make, reopen)
    finally:
        for opened in barriers:
            await opened.close()


@pytest.mark.parametrize(
    "key", ["..", "../auth/token/x", "a/../../b", "/abs", ".", "a/./b", "a/..", ""]
)
async def test_keys_that_would_leave_the_view_are_refused(key: str) -> None:
    below = MemoryStorage()
    view = StorageView(below, "kv/")
    for call in (
        view.get(key),
        view.put(key, b"v"),
        view.delete(key),
        view.write_batch([Put("fine", b"v"), Put(key, b"v")]),
        view.write_batch([Delete(key)]),
        view.try_lock(key, "h", 10),
        view.unlock(key, "h"),
        view.lock_holder(key),
    ):
        with pytest.raises(InvalidRequestError):
            await call
    assert below.data == {}  # nothing of the batch was applied


@pytest.mark.parametrize("prefix", ["..", "../", "a/../", "/abs"])
async def test_list_prefixes_that_would_leave_the_view_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidRequestError):
        await StorageView(MemoryStorage(), "kv/").list(prefix)


@pytest.mark.parametrize("prefix", ["", "/", "kv", "/kv/", "../kv/", "a/../kv/", "./"])
def test_bad_view_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises((ValueError, InvalidRequestError)):
        StorageView(MemoryStorage(), prefix)


async def test_view_of_a_view_is_one_prefix_and_locks_are_confined() -> None:
    below = MemoryStorage()
    outer = StorageView(below, "rotation/")
    inner = outer.view("grace/")
    assert inner.prefix == "rotation/grace/" and inner.backend is below
    await inner.put("app/db/000000000002", b"g")
    assert list(below.data) == ["rotation/grace/app/db/000000000002"]
    assert await outer.list("") == ["grace/app/db/000000000002"]
    assert await outer.try_lock("scheduler", "a", 10)
    assert await below.lock_holder("rotation/scheduler") is not None
    assert isinstance(outer, LockInspector) and isinstance(outer, StorageBackend)
    assert (await outer.lock_holder("scheduler") or ("",))[0] == "a"
    assert not await below.try_lock("rotation/scheduler", "b", 10)
    await outer.unlock("scheduler", "a")
    assert await below.try_lock("rotation/scheduler", "b", 10)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    init_key_file(tmp_path / "root.key")
    return tmp_path / "root.key"


async def _barrier(path: Path, key_file: Path) -> Barrier:
    barrier = Barrier(SqliteStorage(path), FileSeal(key_file))
    await barrier.open()
    await barrier.unseal()
    return barrier


async def test_a_data_dir_written_with_full_keys_reads_through_views(
    tmp_path: Path, key_file: Path
) -> None:
    """Records written the old way (full key straight to the barrier) read through a view:
    the stored key and the AEAD AAD (the full key) are the same either way."""
    old = await _barrier(tmp_path / "vs.db", key_file)
    await old.put("auth/token/abc123", b'{"old": true}')
    await old.put("kv/meta/app/db", b"meta")
    await old.close()

    new = await _barrier(tmp_path / "vs.db", key_file)
    try:
        tokens = StorageView(new, "auth/")
        rec = await tokens.get("token/abc123")
        assert rec is not None and rec.value == b'{"old": true}'
        assert await StorageView(new, "kv/").list("meta/") == ["meta/app/db"]
        # And the other way round: a write through a view is the old full-key record.
        await tokens.put("token/def456", b"new")
        back = await new.get("auth/token/def456")
        assert back is not None and back.value == b"new"
        raw = new._backend
        assert await raw.list("logical/auth/") == [
            "logical/auth/token/abc123",
            "logical/auth/token/def456",
        ]
        assert tokens.stored_key("token/x") == "logical/auth/token/x"
        assert tokens.stored_key() == "logical/auth/"
        assert StorageView(MemoryStorage(), "auth/").stored_key("token/x") == "auth/token/x"
    finally:
        await new.close()
