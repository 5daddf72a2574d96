"""Plaintext never reaches disk: scan the SQLite files after real writes."""

from __future__ import annotations

import secrets
import sqlite3
import stat
from pathlib import Path

from vaultside.crypto.barrier import Barrier
from vaultside.kv.record import data_key
from vaultside.kv.store import KVStore
from vaultside.wiring.keyspace import view


async def test_no_plaintext_in_database_files(
    tmp_path: Path, kv: KVStore, barrier: Barrier
) -> None:
    values = [f"pt-{secrets.token_hex(12)}" for _ in range(40)]
    custom = f"meta-{secrets.token_hex(12)}"
    for i, value in enumerate(values):
        await kv.put(f"scan/s{i % 8}", {"field": value, "upper": value.upper()})
    await kv.write_metadata("scan/s0", custom_metadata={"note": custom})
    await kv.destroy("scan/s1", [1])
    await barrier.rotate_key()
    await barrier.rewrap()

    db, wal = tmp_path / "vs.db", tmp_path / "vs.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    blobs = {p.name: p.read_bytes() for p in tmp_path.glob("vs.db*")}
    # Control: the scan sees real content (key names are stored in the clear).
    assert any(b"kv/meta/scan/s0" in blob for blob in blobs.values())
    needles = [*values, *(v.upper() for v in values), custom]
    for name, blob in blobs.items():
        for needle in needles:
            for encoded in (needle.encode(), needle.encode("utf-16-le")):
                assert encoded not in blob, f"plaintext found in {name}"
    for path in (db, wal, tmp_path / "vs.db-shm"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_destroyed_ciphertext_is_gone_from_the_file(
    tmp_path: Path, kv: KVStore, barrier: Barrier
) -> None:
    for _ in range(3):
        await kv.put("shred/me", {"v": secrets.token_hex(200)})
    raw = await barrier._backend.get(view(barrier, "kv").stored_key(data_key("shred/me", 2)))
    assert raw is not None
    probe = raw.value[40:104]  # 64 bytes from the middle of the ciphertext
    await kv.destroy("shred/me", [2])
    conn = sqlite3.connect(tmp_path / "vs.db")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for path in tmp_path.glob("vs.db*"):
        assert probe not in path.read_bytes(), path.name
    other = await barrier._backend.get(view(barrier, "kv").stored_key(data_key("shred/me", 3)))
    assert other is not None
    assert any(other.value[40:104] in p.read_bytes() for p in tmp_path.glob("vs.db*"))
