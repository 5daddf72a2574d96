"""migrate-storage between two SQLite backends: exact copy, verification, refusal, force."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.stores import new_key_file, open_barrier
from vaultside.clock import FakeClock
from vaultside.errors import ConflictError, IntegrityError
from vaultside.kv.store import KVStore
from vaultside.storage import migrate as migrate_mod
from vaultside.storage.migrate import differences, manifest, migrate, record_hash, verify
from vaultside.storage.sqlite import SqliteStorage


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SqliteStorage, SqliteStorage]]:
    src, dst = SqliteStorage(tmp_path / "src.db"), SqliteStorage(tmp_path / "dst.db")
    await src.open()
    await dst.open()
    yield src, dst
    await src.close()
    await dst.close()


async def test_copies_every_record_byte_for_byte(
    pair: tuple[SqliteStorage, SqliteStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = pair
    monkeypatch.setattr(migrate_mod, "PAGE", 7)  # several pages and batches
    records = {f"k/{i:03d}": os.urandom(i % 50) for i in range(40)}
    records["日本/キー"] = b"\x00\xff"
    for key, value in records.items():
        await src.put(key, value)
    await src.delete("k/005")
    del records["k/005"]
    seen: list[int] = []
    report = await migrate(src, dst, progress=seen.append)
    assert report.copied == len(records) and report.removed == 0
    assert seen[-1] == len(records) and len(seen) > 1
    for key, value in records.items():
        rec = await dst.get(key)
        assert rec is not None and rec.value == value
    assert await dst.list("") == sorted(records)
    assert report.source.digest == report.destination.digest
    assert report.source.count == len(records)
    assert report.source.value_bytes == sum(len(v) for v in records.values())


async def test_refuses_non_empty_destination_unless_forced(
    pair: tuple[SqliteStorage, SqliteStorage],
) -> None:
    src, dst = pair
    await src.put("a", b"1")
    await dst.put("stale", b"old")
    with pytest.raises(ConflictError):
        await migrate(src, dst)
    assert await dst.list("") == ["stale"]  # untouched
    report = await migrate(src, dst, force=True)
    assert report.removed == 1 and report.copied == 1
    assert await dst.list("") == ["a"]


async def test_verify_names_no_keys_but_counts_differences(
    pair: tuple[SqliteStorage, SqliteStorage],
) -> None:
    src, dst = pair
    await src.put("same", b"x")
    await src.put("changed", b"y")
    await src.put("missing", b"z")
    await dst.put("same", b"x")
    await dst.put("changed", b"Y")
    await dst.put("extra", b"e")
    with pytest.raises(IntegrityError) as info:
        await verify(src, dst)
    assert "3 record(s) differ" in info.value.message
    assert "changed" not in info.value.message
    assert differences(await manifest(src), await manifest(dst)) == ["changed", "extra", "missing"]


def test_record_hash_separates_key_and_value() -> None:
    assert record_hash("ab", b"c") != record_hash("a", b"bc")
    assert record_hash("a", b"b") == record_hash("a", b"b")


async def test_copied_ciphertext_decrypts_with_the_same_root_key(tmp_path: Path) -> None:
    """The barrier's records stay valid in another backend: no re-encryption is needed."""
    clock = FakeClock()
    key_file = new_key_file(tmp_path / "root.key")
    src, dst = SqliteStorage(tmp_path / "a.db"), SqliteStorage(tmp_path / "b.db")
    barrier_a = await open_barrier(src, key_file, clock=clock)
    kv_a = KVStore(barrier_a, clock=clock)
    value = os.urandom(16).hex()
    await kv_a.put("app/db", {"password": value})
    await kv_a.put("app/db", {"password": value + "2"})
    await dst.open()
    report = await migrate(src, dst)
    assert report.copied >= 3  # keyring + metadata + two versions
    for rec_key in await dst.list(""):
        got = await dst.get(rec_key)
        assert got is not None and value.encode() not in got.value  # SECURITY: ciphertext only
    barrier_b = await open_barrier(dst, key_file, clock=clock, open_storage=False)
    kv_b = KVStore(barrier_b, clock=clock)
    first = await kv_b.get("app/db", version=1)
    latest = await kv_b.get("app/db")
    assert first.data == {"password": value}
    assert latest.data == {"password": value + "2"} and latest.meta.version == 2
    await barrier_a.close()
    await barrier_b.close()


def test_cli_refuses_same_kind_and_missing_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from vaultside.cli.main import cli

    monkeypatch.setenv("VAULTSIDE_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    same = runner.invoke(cli, ["operator", "migrate-storage", "--from", "sqlite", "--to", "sqlite"])
    assert same.exit_code == 2 and "must differ" in same.output
    dsn = tmp_path / "pg.dsn"
    dsn.write_text("postgresql://u:hunter2@127.0.0.1:1/db")
    missing = runner.invoke(
        cli,
        ["operator", "migrate-storage", "--from", "sqlite", "--to", "postgres",
         "--postgres-dsn-file", str(dsn)],
    )  # fmt: skip
    assert missing.exit_code == 2 and "no SQLite database" in missing.output
    assert "hunter2" not in missing.output
    source = SqliteStorage(tmp_path / "vaultside.db")

    async def seed() -> None:
        await source.open()
        await source.put("k", b"v")
        await source.close()

    asyncio.run(seed())
    down = runner.invoke(
        cli,
        ["operator", "migrate-storage", "--from", "sqlite", "--to", "postgres",
         "--postgres-dsn-file", str(dsn)],
    )  # fmt: skip
    assert down.exit_code == 2 and "unavailable" in down.output
    assert "hunter2" not in down.output
