"""SqliteStorage: the conformance suite plus SQLite-specific behaviour."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.storage_conformance import each_check
from vaultside.clock import FakeClock
from vaultside.errors import UpstreamUnavailableError
from vaultside.storage.base import StorageBackend
from vaultside.storage.conformance import Check, run_check
from vaultside.storage.sqlite import SqliteStorage, prefix_end


async def _reopen(backend: StorageBackend) -> StorageBackend:
    assert isinstance(backend, SqliteStorage)
    await backend.close()
    again = SqliteStorage(backend.path)
    await again.open()
    return again


@each_check
async def test_conformance(check: Check, tmp_path: Path) -> None:
    async def make(clock: FakeClock) -> StorageBackend:
        storage = SqliteStorage(tmp_path / "vs.db", clock=clock)
        await storage.open()
        return storage

    await run_check(check, make, _reopen)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    s = SqliteStorage(tmp_path / "vs.db")
    await s.open()
    yield s
    await s.close()


async def test_files_are_private(storage: SqliteStorage) -> None:
    await storage.put("k", b"v")
    files = [storage.path, Path(f"{storage.path}-wal"), Path(f"{storage.path}-shm")]
    for f in files:
        assert f.exists(), f
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


async def test_wal_and_durable_sync(storage: SqliteStorage) -> None:
    import sqlite3

    conn = sqlite3.connect(storage.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = conn.execute("SELECT version FROM schema_version").fetchall()
        assert version == [(1,)]
    finally:
        conn.close()
    assert storage._connect().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


async def test_open_is_idempotent_and_reopen_migrates_nothing(tmp_path: Path) -> None:
    s = SqliteStorage(tmp_path / "vs.db")
    await s.open()
    await s.open()
    await s.put("k", b"v")
    await s.close()
    await s.close()
    again = SqliteStorage(tmp_path / "vs.db")
    await again.open()
    rec = await again.get("k")
    await again.close()
    assert rec is not None and rec.value == b"v"


async def test_closed_storage_refuses() -> None:
    s = SqliteStorage(Path("/nonexistent-dir/x.db"))
    with pytest.raises(UpstreamUnavailableError):
        await s.get("k")
    with pytest.raises(UpstreamUnavailableError):
        await s.open()


async def test_newer_schema_refused(tmp_path: Path) -> None:
    s = SqliteStorage(tmp_path / "vs.db")
    await s.open()
    await s.close()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "vs.db")
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(UpstreamUnavailableError, match="newer"):
        await SqliteStorage(tmp_path / "vs.db").open()


async def test_two_instances_share_one_file(tmp_path: Path) -> None:
    """Two workers (separate connections and writer threads) on one file: no lost writes."""
    a, b = SqliteStorage(tmp_path / "vs.db"), SqliteStorage(tmp_path / "vs.db")
    await a.open()
    await b.open()
    try:
        await asyncio.gather(
            *(a.put(f"a/{i}", b"x") for i in range(150)),
            *(b.put(f"b/{i}", b"y") for i in range(150)),
        )
        assert len(await a.list("")) == 300
        assert len(await b.list("")) == 300
        rev = await a.put("shared", b"1")
        await b.put("shared", b"2", expect_revision=rev)
        rec = await a.get("shared")
        assert rec is not None and rec.value == b"2"
        assert await a.try_lock("leader", "worker-a", 30) is True
        assert await b.try_lock("leader", "worker-b", 30) is False
    finally:
        await a.close()
        await b.close()


async def test_group_commit_batches_writers(storage: SqliteStorage) -> None:
    """Many concurrent writers share commits: far fewer transactions than writes."""
    commits = 0
    original = storage._run_batch

    def counting(conn, jobs):  # type: ignore[no-untyped-def]
        nonlocal commits
        commits += 1
        original(conn, jobs)

    storage._run_batch = counting  # type: ignore[method-assign]
    await asyncio.gather(*(storage.put(f"k/{i}", b"v") for i in range(500)))
    assert len(await storage.list("k/")) == 500
    assert commits < 250


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("", None),
        ("a", "b"),
        ("a/", "a0"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("x\ud7ff", "x\ue000"),
    ],
)
def test_prefix_end(prefix: str, end: str | None) -> None:
    assert prefix_end(prefix) == end
