"""KVStore behaviour: versions, check-and-set, deletes, retention, metadata, listing."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.seal import FileSeal
from vaultside.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    SealedError,
)
from vaultside.kv.record import data_key
from vaultside.kv.store import KVStore
from vaultside.storage.sqlite import SqliteStorage
from vaultside.wiring.keyspace import view


async def test_put_get_versions(kv: KVStore, clock: FakeClock) -> None:
    m1 = await kv.put("app/db", {"user": "app", "password": "pw-one"})
    await clock.advance(5)
    m2 = await kv.put("app/db", {"user": "app", "password": "pw-two ✓"})
    assert (m1.version, m2.version) == (1, 2)
    assert m2.created_time == m1.created_time + 5
    latest = await kv.get("app/db")
    assert latest.data == {"user": "app", "password": "pw-two ✓"}
    assert latest.meta.version == 2 and latest.secret_type == "generic"
    assert (await kv.get("app/db", 1)).data["password"] == "pw-one"
    with pytest.raises(NotFoundError):
        await kv.get("app/db", 3)
    with pytest.raises(NotFoundError):
        await kv.get("app/other")


async def test_data_validation(kv: KVStore) -> None:
    bad: list[object] = [
        ["not", "a", "dict"],
        {"ok": 3},
        {"": "empty name"},
        {"bad name": "x"},
        {"a/b": "x"},
        {"x" * 129: "x"},
        {"ok": "\ud800"},
    ]
    for data in bad:
        with pytest.raises(InvalidRequestError) as info:
            await kv.put("p", data)  # type: ignore[arg-type]
        assert "empty name" not in str(info.value)
    await kv.put("p", {"k": "v" * 1023})  # 1 + 1023 = exactly the 1024-byte limit
    with pytest.raises(PayloadTooLargeError, match="1025 bytes; the limit is 1024"):
        await kv.put("p", {"k": "v" * 1024})
    with pytest.raises(PayloadTooLargeError):
        await kv.put("p", {"k": "é" * 512})  # 1 + 1024 UTF-8 bytes
    await kv.put("p", {})
    with pytest.raises(InvalidRequestError):
        await kv.put("../p", {"k": "v"})
    with pytest.raises(InvalidRequestError):
        await kv.put("p", {"k": "v"}, secret_type="bogus")


async def test_secret_values_never_in_errors(kv: KVStore) -> None:
    value = secrets.token_urlsafe(16)
    with pytest.raises(PayloadTooLargeError) as too_big:
        await kv.put("p", {"k": value * 100})
    with pytest.raises(InvalidRequestError) as bad_name:
        await kv.put("p", {"bad name": value})
    for err in (too_big.value, bad_name.value):
        assert value not in str(err) and value not in repr(err.public_messages())
    await kv.put("p", {"k": value})
    assert value not in repr(await kv.get("p"))


async def test_check_and_set(kv: KVStore) -> None:
    await kv.put("c", {"v": "1"}, cas=0)
    with pytest.raises(ConflictError, match=r"cas does not match the current version \(1\)"):
        await kv.put("c", {"v": "x"}, cas=0)
    await kv.put("c", {"v": "2"}, cas=1)
    with pytest.raises(ConflictError):
        await kv.put("c", {"v": "x"}, cas=1)
    with pytest.raises(InvalidRequestError):
        await kv.put("c", {"v": "x"}, cas=-1)
    assert (await kv.get("c")).data == {"v": "2"}


async def test_cas_required(kv: KVStore) -> None:
    await kv.put("r", {"v": "1"})
    await kv.write_metadata("r", cas_required=True)
    with pytest.raises(InvalidRequestError, match="requires check-and-set"):
        await kv.put("r", {"v": "2"})
    assert (await kv.put("r", {"v": "2"}, cas=1)).version == 2


async def test_concurrent_writers_get_consecutive_versions(kv: KVStore) -> None:
    metas = await asyncio.gather(*(kv.put("hot", {"n": str(i)}) for i in range(200)))
    assert sorted(m.version for m in metas) == list(range(1, 201))
    meta = await kv.read_metadata("hot")
    assert meta.current_version == 200 and len(meta.versions) == 200
    for m, i in zip(metas, range(200), strict=True):
        assert (await kv.get("hot", m.version)).data == {"n": str(i)}


async def test_two_processes_never_tear(tmp_path: Path, barrier: Barrier) -> None:
    """A second stack on the same file (as a second worker process would be)."""
    other = Barrier(SqliteStorage(tmp_path / "vs.db"), FileSeal(tmp_path / "root.key"))
    await other.open()
    await other.unseal()
    try:
        a = KVStore(barrier, clock=FakeClock(), default_max_versions=0)
        b = KVStore(other, clock=FakeClock(), default_max_versions=0)
        metas = await asyncio.gather(
            *(a.put("shared", {"w": f"a{i}"}) for i in range(40)),
            *(b.put("shared", {"w": f"b{i}"}) for i in range(40)),
        )
        assert sorted(m.version for m in metas) == list(range(1, 81))
        seen = {(await a.get("shared", v)).data["w"] for v in range(1, 81)}
        assert len(seen) == 80
    finally:
        await other.close()


async def test_soft_delete_and_undelete(kv: KVStore, clock: FakeClock) -> None:
    for i in range(3):
        await kv.put("d", {"v": str(i + 1)})
    await kv.delete_versions("d", None)
    with pytest.raises(NotFoundError, match="deleted"):
        await kv.get("d")
    assert (await kv.get("d", 2)).data == {"v": "2"}
    meta = await kv.read_metadata("d")
    assert meta.versions[3].deletion_time == clock.now()
    await kv.delete_versions("d", [1, 2, 99])
    with pytest.raises(NotFoundError):
        await kv.get("d", 1)
    await kv.undelete("d", [1, 3])
    assert (await kv.get("d")).data == {"v": "3"}
    assert (await kv.get("d", 1)).data == {"v": "1"}
    with pytest.raises(NotFoundError):
        await kv.get("d", 2)
    with pytest.raises(InvalidRequestError):
        await kv.delete_versions("d", [])
    with pytest.raises(InvalidRequestError):
        await kv.undelete("d", [0])
    with pytest.raises(NotFoundError):
        await kv.delete_versions("absent", None)


async def test_destroy_removes_ciphertext(kv: KVStore, barrier: Barrier) -> None:
    await kv.put("x", {"v": "one"})
    await kv.put("x", {"v": "two"})
    assert await view(barrier, "kv").get(data_key("x", 1)) is not None
    await kv.destroy("x", [1])
    assert await view(barrier, "kv").get(data_key("x", 1)) is None
    with pytest.raises(NotFoundError, match="destroyed"):
        await kv.get("x", 1)
    await kv.undelete("x", [1])
    with pytest.raises(NotFoundError, match="destroyed"):
        await kv.get("x", 1)
    meta = await kv.read_metadata("x")
    assert meta.versions[1].destroyed and not meta.versions[2].destroyed
    assert (await kv.get("x")).data == {"v": "two"}


async def test_retention(barrier: Barrier, clock: FakeClock) -> None:
    kv = KVStore(barrier, clock=clock, default_max_versions=3)
    for i in range(5):
        await kv.put("ret", {"v": str(i + 1)})
    meta = await kv.read_metadata("ret")
    assert sorted(meta.versions) == [3, 4, 5]
    assert meta.oldest_version == 3 and meta.current_version == 5
    assert await view(barrier, "kv").get(data_key("ret", 1)) is None
    assert await view(barrier, "kv").get(data_key("ret", 2)) is None
    with pytest.raises(NotFoundError):
        await kv.get("ret", 2)
    meta = await kv.write_metadata("ret", max_versions=2)
    assert sorted(meta.versions) == [4, 5] and meta.max_versions == 2
    assert await view(barrier, "kv").get(data_key("ret", 3)) is None
    await kv.put("ret", {"v": "6"})
    assert sorted((await kv.read_metadata("ret")).versions) == [5, 6]
    with pytest.raises(InvalidRequestError):
        await kv.write_metadata("ret", max_versions=-1)


async def test_metadata(kv: KVStore, clock: FakeClock) -> None:
    created = await kv.write_metadata("m", custom_metadata={"owner": "team-a"}, secret_type="token")
    assert created.current_version == 0 and created.versions == {}
    assert created.secret_type == "token"
    assert (await kv.put("m", {"t": "x"}, cas=0)).version == 1
    await clock.advance(10)
    meta = await kv.write_metadata("m", custom_metadata={"env": "prod"})
    assert meta.custom_metadata == {"env": "prod"}
    assert meta.updated_time == meta.created_time + 10
    assert meta.secret_type == "token"
    assert (await kv.get("m")).secret_type == "token"
    await kv.put("m", {"t": "y"}, secret_type="password")
    assert (await kv.read_metadata("m")).secret_type == "password"
    too_many = {f"k{i}": "v" for i in range(65)}
    for bad in (too_many, {"k": "v" * 513}, {"": "v"}, {"k" * 129: "v"}, {"k": 1}):
        with pytest.raises(InvalidRequestError):
            await kv.write_metadata("m", custom_metadata=bad)  # type: ignore[arg-type]
    await kv.write_metadata("m", custom_metadata={f"k{i}": "v" * 512 for i in range(64)})
    with pytest.raises(InvalidRequestError):
        await kv.write_metadata("m", secret_type="nope")
    with pytest.raises(NotFoundError):
        await kv.read_metadata("absent")


async def test_delete_all(kv: KVStore, barrier: Barrier) -> None:
    await kv.put("gone", {"v": "1"})
    await kv.put("gone", {"v": "2"})
    await kv.delete_all("gone")
    assert not await kv.exists("gone")
    assert await kv.revision("gone") == 0
    assert await barrier.list("kv/data/gone/") == []
    await kv.delete_all("gone")
    assert (await kv.put("gone", {"v": "new"})).version == 1


async def test_revision_changes_on_every_change(kv: KVStore) -> None:
    seen = [await kv.revision("e")]
    await kv.put("e", {"v": "1"})
    seen.append(await kv.revision("e"))
    await kv.put("e", {"v": "2"})
    seen.append(await kv.revision("e"))
    for change in (
        kv.delete_versions("e", None),
        kv.undelete("e", [2]),
        kv.destroy("e", [1]),
        kv.write_metadata("e", custom_metadata={"a": "b"}),
    ):
        await change
        seen.append(await kv.revision("e"))
    assert seen[0] == 0
    assert len(set(seen)) == len(seen)
    assert await kv.revision("e") == await kv.revision("e")


async def test_list(kv: KVStore) -> None:
    for path in ("app/db", "app/api/key", "app/api/cert", "app-x", "app/z/y/x", "top"):
        await kv.put(path, {"v": "1"})
    await kv.put("app", {"v": "1"})
    assert await kv.list("") == ["app", "app-x", "app/", "top"]
    assert await kv.list("app") == ["api/", "db", "z/"]
    assert await kv.list("app/") == ["api/", "db", "z/"]
    assert await kv.list("app/api") == ["cert", "key"]
    assert await kv.list("nothing") == []
    assert await kv.list("ap") == []
    with pytest.raises(InvalidRequestError):
        await kv.list("../x")


async def test_list_many_children(barrier: Barrier, clock: FakeClock) -> None:
    kv = KVStore(barrier, clock=clock)
    await asyncio.gather(*(kv.put(f"d{i % 7}/s{i}", {"v": "x"}) for i in range(600)))
    await asyncio.gather(*(kv.put(f"leaf{i:04d}", {"v": "x"}) for i in range(1100)))
    listed = await kv.list("")
    assert listed[:7] == sorted(f"d{i}/" for i in range(7))
    assert len(listed) == 1107
    assert len(await kv.list("d3")) == len([i for i in range(600) if i % 7 == 3])


async def test_exists_and_all_values(kv: KVStore) -> None:
    assert not await kv.exists("a/b")
    await kv.put("a/b", {"p": "one"})
    await kv.put("a/b", {"p": "two"})
    await kv.put("a/b", {"p": "three"})
    await kv.put("c", {"q": "four"})
    await kv.delete_versions("a/b", [2])
    await kv.destroy("a/b", [1])
    await kv.write_metadata("meta-only", custom_metadata={})
    assert await kv.exists("a/b") and await kv.exists("meta-only")
    values = [item async for item in kv.all_values()]
    assert values == [("a/b", 3, {"p": "three"}), ("c", 1, {"q": "four"})]


async def test_sealed_store_refuses(kv: KVStore, barrier: Barrier) -> None:
    await kv.put("s", {"v": "1"})
    await barrier.seal()
    with pytest.raises(SealedError):
        await kv.get("s")
    with pytest.raises(SealedError):
        await kv.put("s", {"v": "2"})
