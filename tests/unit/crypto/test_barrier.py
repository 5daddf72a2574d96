"""The barrier: conformance, sealing, tamper/move detection, rotation and rewrap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.storage_conformance import each_check
from tests.stores import new_key_file, open_barrier
from vaultside.clock import FakeClock
from vaultside.crypto import aead
from vaultside.crypto.barrier import LOGICAL, Barrier
from vaultside.crypto.seal import FileSeal, PassphraseSeal, init_passphrase_salt
from vaultside.errors import IntegrityError, SealedError, UpstreamUnavailableError
from vaultside.storage.base import Delete, Op, Put, Record, StorageBackend
from vaultside.storage.conformance import Check, run_check
from vaultside.storage.sqlite import SqliteStorage


async def _reopen(backend: StorageBackend) -> StorageBackend:
    assert isinstance(backend, Barrier)
    inner = backend._backend
    assert isinstance(inner, SqliteStorage)
    await backend.close()
    return await open_barrier(SqliteStorage(inner.path), inner.path.parent / "root.key")


@each_check
async def test_conformance(check: Check, tmp_path: Path) -> None:
    async def make(clock: FakeClock) -> StorageBackend:
        key = new_key_file(tmp_path / "root.key")
        return await open_barrier(SqliteStorage(tmp_path / "vs.db", clock=clock), key)

    await run_check(check, make, _reopen)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    s = SqliteStorage(tmp_path / "vs.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def barrier(storage: SqliteStorage, key_file: Path) -> Barrier:
    return await open_barrier(storage, key_file, open_storage=False)


async def test_sealed_barrier_refuses_everything(storage: SqliteStorage, key_file: Path) -> None:
    b = Barrier(storage, FileSeal(key_file))
    assert b.sealed
    calls = [
        b.get("k"),
        b.put("k", b"v"),
        b.delete("k"),
        b.list(""),
        b.write_batch([Put("k", b"v")]),
        b.try_lock("l", "h", 1),
        b.unlock("l", "h"),
        b.rotate_key(),
        b.rewrap(),
        b.key_status(),
    ]
    for call in calls:
        with pytest.raises(SealedError):
            await call


async def test_unseal_creates_keyring_once(storage: SqliteStorage, barrier: Barrier) -> None:
    assert not barrier.sealed
    await barrier.put("app/db", b"s3cr3t-value")
    raw = await storage.get(LOGICAL + "app/db")
    assert raw is not None and b"s3cr3t-value" not in raw.value
    keyring = await storage.get("core/keyring")
    assert keyring is not None
    second = Barrier(storage, barrier._seal)
    await second.unseal()
    rec = await second.get("app/db")
    assert rec is not None and rec.value == b"s3cr3t-value"
    assert await storage.get("core/keyring") == keyring
    status = await second.key_status()
    assert status["active_term"] == 1 and status["seal"] == "file"


async def test_wrong_root_key_is_detected(
    storage: SqliteStorage, barrier: Barrier, tmp_path: Path
) -> None:
    wrong = Barrier(storage, FileSeal(new_key_file(tmp_path / "other.key")))
    with pytest.raises(SealedError, match="wrong root key"):
        await wrong.unseal()
    assert wrong.sealed


async def test_missing_key_file_stays_sealed(storage: SqliteStorage, tmp_path: Path) -> None:
    b = Barrier(storage, FileSeal(tmp_path / "absent.key"))
    with pytest.raises(SealedError, match="does not exist"):
        await b.unseal()
    assert b.sealed


async def test_wrong_passphrase_is_detected(storage: SqliteStorage, tmp_path: Path) -> None:
    salt = tmp_path / "salt.json"
    init_passphrase_salt(salt, time_cost=1, memory_kib=1024, parallelism=1)
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("the right passphrase\n")
    bad.write_text("the wrong passphrase\n")
    good.chmod(0o600)
    bad.chmod(0o600)
    first = Barrier(storage, PassphraseSeal(good, salt))
    await first.unseal()
    await first.put("k", b"v")
    with pytest.raises(SealedError, match="wrong root key"):
        await Barrier(storage, PassphraseSeal(bad, salt)).unseal()
    again = Barrier(storage, PassphraseSeal(good, salt))
    await again.unseal()
    assert await again.get("k") == Record(b"v", (await storage.get(LOGICAL + "k")).revision)  # type: ignore[union-attr]


async def test_seal_wipes_keys(barrier: Barrier) -> None:
    await barrier.put("k", b"v")
    ring = barrier._ring
    assert ring is not None
    held = list(ring._keys.values())
    await barrier.seal()
    assert barrier.sealed
    assert all(not any(k) for k in held)
    with pytest.raises(SealedError):
        await barrier.get("k")
    await barrier.unseal()
    rec = await barrier.get("k")
    assert rec is not None and rec.value == b"v"


async def test_tampered_ciphertext_fails(storage: SqliteStorage, barrier: Barrier) -> None:
    await barrier.put("app/db", b"value")
    raw = await storage.get(LOGICAL + "app/db")
    assert raw is not None
    for i in (0, 3, aead.HEADER_BYTES - 1, aead.HEADER_BYTES, len(raw.value) - 1):
        bad = bytearray(raw.value)
        bad[i] ^= 0x40
        await storage.put(LOGICAL + "app/db", bytes(bad))
        with pytest.raises(IntegrityError):
            await barrier.get("app/db")


async def test_moved_ciphertext_fails(storage: SqliteStorage, barrier: Barrier) -> None:
    await barrier.put("kv/data/app/db/1", b"version one")
    await barrier.put("kv/data/app/db/2", b"version two")
    await barrier.put("kv/data/other/1", b"other")
    v1 = await storage.get(LOGICAL + "kv/data/app/db/1")
    assert v1 is not None
    for target in ("kv/data/app/db/2", "kv/data/other/1", "kv/data/app/db/3"):
        await storage.put(LOGICAL + target, v1.value)
        with pytest.raises(IntegrityError):
            await barrier.get(target)


async def test_rotate_keeps_old_readable(storage: SqliteStorage, barrier: Barrier) -> None:
    await barrier.put("old", b"under term 1")
    assert await barrier.rotate_key() == 2
    await barrier.put("new", b"under term 2")
    old_raw, new_raw = await storage.get(LOGICAL + "old"), await storage.get(LOGICAL + "new")
    assert old_raw is not None and aead.read_term(old_raw.value) == 1
    assert new_raw is not None and aead.read_term(new_raw.value) == 2
    assert (await barrier.get("old")) is not None
    status = await barrier.key_status()
    assert status["active_term"] == 2
    assert [t["term"] for t in status["terms"]] == [1, 2]  # type: ignore[attr-defined]
    assert await barrier.rotate_key() == 3


async def _terms(storage: StorageBackend) -> set[int]:
    terms = set()
    for key in await storage.list(LOGICAL):
        rec = await storage.get(key)
        assert rec is not None
        terms.add(aead.read_term(rec.value))
    return terms


async def test_rewrap_moves_everything(storage: SqliteStorage, barrier: Barrier) -> None:
    await asyncio.gather(*(barrier.put(f"s/{i:04d}", b"v%d" % i) for i in range(1050)))
    await barrier.rotate_key()
    await barrier.put("s/0007", b"rewritten after rotate")
    assert await _terms(storage) == {1, 2}
    assert await barrier.rewrap(batch_size=100) == 1049
    assert await _terms(storage) == {2}
    for i in (0, 500, 1049):
        rec = await barrier.get(f"s/{i:04d}")
        assert rec is not None and rec.value == b"v%d" % i
    rec = await barrier.get("s/0007")
    assert rec is not None and rec.value == b"rewritten after rotate"
    assert await barrier.rewrap() == 0
    status = await barrier.key_status()
    assert status["rewrap"] == {
        "target_term": 2,
        "after": "logical/s/1049",
        "rewritten": 1049,
        "done": True,
    }


class FlakyStorage:
    """A real SqliteStorage that fails puts under ``logical/`` once a budget runs out."""

    def __init__(self, inner: SqliteStorage) -> None:
        self.inner = inner
        self.put_budget: int | None = None
        self.list_afters: list[str] = []
        self.before_put: dict[str, object] = {}

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, key: str) -> Record | None:
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        if key.startswith(LOGICAL) and self.put_budget is not None:
            if self.put_budget <= 0:
                raise UpstreamUnavailableError("storage went away")
            self.put_budget -= 1
        hook = self.before_put.pop(key, None)
        if hook is not None:
            await hook()  # type: ignore[operator]
        return await self.inner.put(key, value, expect_revision=expect_revision)

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        return await self.inner.delete(key, expect_revision=expect_revision)

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        self.list_afters.append(after)
        return await self.inner.list(prefix, after=after, limit=limit)

    async def write_batch(self, ops: Sequence[Op]) -> None:
        await self.inner.write_batch(ops)

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        return await self.inner.try_lock(name, holder, ttl)

    async def unlock(self, name: str, holder: str) -> None:
        await self.inner.unlock(name, holder)


async def test_rewrap_resumes_after_interruption(storage: SqliteStorage, key_file: Path) -> None:
    flaky = FlakyStorage(storage)
    barrier = Barrier(flaky, FileSeal(key_file))
    await barrier.unseal()
    await asyncio.gather(*(barrier.put(f"r/{i:03d}", b"%d" % i) for i in range(250)))
    await barrier.rotate_key()
    flaky.put_budget = 120  # dies inside the third batch of 50
    with pytest.raises(UpstreamUnavailableError):
        await barrier.rewrap(batch_size=50)
    progress = (await barrier.key_status())["rewrap"]
    assert progress == {"target_term": 2, "after": "logical/r/099", "rewritten": 100, "done": False}
    flaky.put_budget = None
    flaky.list_afters.clear()
    assert await barrier.rewrap(batch_size=50) == 130  # 150 left, 20 done before the crash
    assert flaky.list_afters[0] == "logical/r/099"
    assert await _terms(storage) == {2}
    for i in range(250):
        rec = await barrier.get(f"r/{i:03d}")
        assert rec is not None and rec.value == b"%d" % i


async def test_rewrap_never_overwrites_concurrent_write(
    storage: SqliteStorage, key_file: Path
) -> None:
    flaky = FlakyStorage(storage)
    barrier = Barrier(flaky, FileSeal(key_file))
    await barrier.unseal()
    for i in range(10):
        await barrier.put(f"c/{i}", b"old %d" % i)
    await barrier.rotate_key()

    async def concurrent_write() -> None:
        # Runs after rewrap read c/5 (under term 1) and before it stores the rewrapped copy.
        await barrier.put("c/5", b"written during rewrap")

    flaky.before_put[LOGICAL + "c/5"] = concurrent_write
    assert await barrier.rewrap() == 9
    rec = await barrier.get("c/5")
    assert rec is not None and rec.value == b"written during rewrap"
    assert await _terms(storage) == {2}


async def test_other_process_rotation_is_picked_up(tmp_path: Path, key_file: Path) -> None:
    clock = FakeClock()
    sa, sb = SqliteStorage(tmp_path / "shared.db"), SqliteStorage(tmp_path / "shared.db")
    a = Barrier(sa, FileSeal(key_file), clock=clock)
    b = Barrier(sb, FileSeal(key_file), clock=clock)
    await a.open()
    await b.open()
    try:
        await a.unseal()
        await b.unseal()
        await b.put("before", b"1")
        assert await a.rotate_key() == 2
        await a.put("from-a", b"term two")
        rec = await b.get("from-a")  # unknown term 2 → b reloads the keyring
        assert rec is not None and rec.value == b"term two"
        await clock.advance(6)
        await b.put("from-b", b"x")
        raw = await sb.get(LOGICAL + "from-b")
        assert raw is not None and aead.read_term(raw.value) == 2
    finally:
        await a.close()
        await b.close()


async def test_batch_encrypts_and_binds(storage: SqliteStorage, barrier: Barrier) -> None:
    await barrier.write_batch([Put("x", b"plain-x"), Put("y", b"plain-y", 0)])
    await barrier.write_batch([Delete("x")])
    assert await barrier.get("x") is None
    raw = await storage.get(LOGICAL + "y")
    assert raw is not None and b"plain-y" not in raw.value
    assert await barrier.list("") == ["y"]


async def test_lost_keyring_is_not_replaced(storage: SqliteStorage, barrier: Barrier) -> None:
    await barrier.put("k", b"v")
    await storage.delete("core/keyring")
    again = Barrier(storage, barrier._seal)
    with pytest.raises(SealedError, match="keyring is missing"):
        await again.unseal()
    assert await storage.get("core/keyring") is None
