"""The keyed, anchored chain: MACs, the anchor in storage, size rotation, verify modes."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from vaultside.audit.anchor import ChainAnchor, load_anchor, load_or_create_key
from vaultside.audit.chain import GENESIS, Link, canonical
from vaultside.audit.sinks import FileSink, rotated_files
from vaultside.audit.verify import verify_chain
from vaultside.storage.memory import MemoryStorage
from vaultside.wiring.keyspace import view

from .conftest import write_from_two_processes

CHAIN = "host-a:/var/lib/vaultside/audit.log"


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def _rechain(records: list[dict[str, Any]], prev: str) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        body = {k: v for k, v in rec.items() if k not in ("hash", "mac")}
        body["prev"] = prev
        prev = hashlib.sha256(canonical(body)).hexdigest()
        out.append({**rec, **body, "hash": prev})
    return out


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(canonical(r) + b"\n" for r in records))


async def _keyed_log(path: Path, n: int = 6, **kw: Any) -> tuple[bytes, MemoryStorage]:
    storage = MemoryStorage()
    sink = FileSink(path, **kw)
    anchor = ChainAnchor(storage, [sink], CHAIN)
    await anchor.start()
    for i in range(n):
        await sink.write({"i": i})
    await anchor.close()
    await sink.close()
    return await load_or_create_key(storage), storage


async def test_keyed_records_carry_a_mac_and_the_anchor_follows(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    key, storage = await _keyed_log(path)
    records = _records(path)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(len(r["mac"]) == 64 for r in records)
    anchor = await load_anchor(storage, CHAIN)
    assert anchor == Link(6, records[-1]["hash"], records[-1]["mac"])
    result = verify_chain(path, key=key, anchor=anchor)
    assert result.ok and result.keyed and result.records == 6, result.problems


async def test_an_edit_re_chained_without_the_key_fails_only_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    key, storage = await _keyed_log(path)
    records = _records(path)
    records[2]["i"] = 99
    _write(path, records[:2] + _rechain(records[2:], records[1]["hash"]))
    assert verify_chain(path).ok  # structure alone cannot tell
    result = verify_chain(path, key=key, anchor=await load_anchor(storage, CHAIN))
    assert not result.ok
    assert result.problems[0].startswith("line 3: MAC does not match"), result.problems


async def test_truncated_tail_and_restarted_chain_fail_against_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    key, storage = await _keyed_log(path)
    anchor = await load_anchor(storage, CHAIN)
    records = _records(path)
    _write(path, records[:-2])
    assert verify_chain(path, key=key).ok  # MACs alone cannot see a shorter tail
    result = verify_chain(path, key=key, anchor=anchor)
    assert not result.ok and "tail truncated" in result.problems[-1], result.problems
    # A chain restarted from genesis with the old MACs kept: every MAC and the anchor fail.
    _write(path, _rechain([{k: v for k, v in r.items() if k != "seq"} for r in records], GENESIS))
    assert verify_chain(path).ok
    assert not verify_chain(path, key=key, anchor=anchor).ok


async def test_a_deleted_file_continues_from_the_anchor_and_shows_the_gap(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    key, storage = await _keyed_log(path)
    path.unlink()
    sink = FileSink(path)
    anchor = ChainAnchor(storage, [sink], CHAIN)
    await anchor.start()  # a new process: the anchor says where the chain was
    await sink.write({"after": True})
    await anchor.close()
    await sink.close()
    first = _records(path)[0]
    assert first["seq"] == 7 and first["prev"] != GENESIS
    result = verify_chain(path, key=key, anchor=await load_anchor(storage, CHAIN))
    assert not result.ok
    assert "chain begins mid-way (seq 7)" in result.problems[0], result.problems


async def test_unkeyed_records_before_keyed_ones_are_protected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    storage = MemoryStorage()
    sink = FileSink(path)
    await sink.write({"before": "unseal"})  # sealed: no key yet
    anchor = ChainAnchor(storage, [sink], CHAIN)
    await anchor.start()
    await sink.write({"after": "unseal"})
    await anchor.close()
    await sink.close()
    key = await load_or_create_key(storage)
    records = _records(path)
    assert "mac" not in records[0] and "mac" in records[1]
    records[0]["before"] = "forged"
    _write(path, _rechain(records, GENESIS))
    result = verify_chain(path, key=key, anchor=await load_anchor(storage, CHAIN))
    assert not result.ok and result.problems[0].startswith("line 2: MAC"), result.problems


async def test_size_rotation_keeps_one_chain_across_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    key, storage = await _keyed_log(path, n=40, max_bytes=1500)
    rotated = rotated_files(path)
    assert len(rotated) >= 3
    assert rotated[0].name == f"audit.log.{_records(rotated[0])[-1]['seq']:012d}"
    result = verify_chain(path, key=key, anchor=await load_anchor(storage, CHAIN))
    assert result.ok and result.records == 40, result.problems
    rotated[1].unlink()  # a deleted middle file
    broken = verify_chain(path, key=key, anchor=await load_anchor(storage, CHAIN))
    assert not broken.ok and "chain broken" in broken.problems[0], broken.problems


def test_two_processes_rotating_one_file_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_from_two_processes(path, 200, ", max_bytes=8192")
    assert len(rotated_files(path)) >= 5
    result = verify_chain(path)
    assert result.ok and result.records == 1200, result.problems[:5]


async def test_the_chain_key_is_created_once(tmp_path: Path) -> None:
    below = MemoryStorage()
    storage = view(below, "audit")  # as wiring hands it out: the stored key is unchanged
    first = await load_or_create_key(storage)
    assert first == await load_or_create_key(storage) and len(first) == 32
    assert secrets.compare_digest(first, below.data["audit/chain-key"].value)


async def test_servers_sharing_storage_keep_their_own_anchors(tmp_path: Path) -> None:
    storage = MemoryStorage()
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    sinks = {name: FileSink(path) for name, path in logs.items()}
    anchors = {name: ChainAnchor(storage, [sinks[name]], f"host-{name}:/x") for name in logs}
    for anchor in anchors.values():
        await anchor.start()
    for i in range(5):
        await sinks["a"].write({"i": i})
    for i in range(3):
        await sinks["b"].write({"i": i})
    for name in logs:
        await anchors[name].close()
        await sinks[name].close()
    key = await load_or_create_key(storage)
    for name, path in logs.items():
        anchor = await load_anchor(storage, f"host-{name}:/x")
        assert anchor is not None and anchor.seq == {"a": 5, "b": 3}[name]
        result = verify_chain(path, key=key, anchor=anchor)
        assert result.ok, (name, result.problems)
