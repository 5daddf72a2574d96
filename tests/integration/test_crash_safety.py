"""Crash safety: ``kill -9`` during 1,000 concurrent writes loses no acknowledged write.

Every write that got a 200 must read back after a restart at its acknowledged version with
its exact value; every other read is either that or a clean 404 (no torn records, no 500s).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections import Counter
from dataclasses import dataclass

from vaultside import errors
from vaultside.client import NotModified, VaultsideClient

from .services.vaultside_server import VaultsideServerFactory

DISTINCT = 800  # one write each
HOT_PATHS, HOT_WRITES = 20, 10  # 200 concurrent writes to the same 20 paths (≤ max_versions)
KILL_AFTER = 350  # acknowledged writes before SIGKILL


@dataclass(frozen=True)
class Ack:
    path: str
    version: int
    value: str


async def test_kill_9_during_concurrent_writes(vaultside_server: VaultsideServerFactory) -> None:
    server = vaultside_server()
    assert server.proc is not None
    pid = server.proc.pid
    jobs: list[tuple[str, str]] = [(f"crash/d{i:04d}", secrets.token_urlsafe(24))
                                   for i in range(DISTINCT)]  # fmt: skip
    jobs += [(f"crash/hot{h:02d}", secrets.token_urlsafe(24))
             for h in range(HOT_PATHS) for _ in range(HOT_WRITES)]  # fmt: skip
    attempted: dict[str, set[str]] = {}
    for path, value in jobs:
        attempted.setdefault(path, set()).add(value)

    acks: list[Ack] = []
    failures: list[BaseException] = []
    killed = asyncio.Event()

    async def write(client: VaultsideClient, path: str, value: str) -> None:
        try:
            meta = await client.write_secret(path, {"v": value})
        except (errors.UpstreamUnavailableError, errors.ConflictError) as exc:
            failures.append(exc)
            return
        acks.append(Ack(path, meta.version, value))
        if len(acks) >= KILL_AFTER and not killed.is_set():
            killed.set()
            os.kill(pid, signal.SIGKILL)  # right now, with hundreds of writes in flight

    async with VaultsideClient(
        server.addr, server.root_token, timeout=30, max_connections=256
    ) as client:
        await asyncio.gather(*(write(client, p, v) for p, v in jobs))
    await asyncio.to_thread(server.proc.wait, 10)
    assert killed.is_set(), f"only {len(acks)} writes were acknowledged before the end"
    assert acks and failures, (len(acks), len(failures))  # the kill really was mid-way

    # SECURITY-relevant invariant: no version number is acknowledged twice for one path.
    seen = {(a.path, a.version) for a in acks}
    assert len(seen) == len(acks), "two writes acknowledged with the same version"

    kinds = Counter(type(f).__name__ for f in failures)
    print(f"\ncrash: {len(acks)} acknowledged, failed: {dict(kinds)}")
    assert kinds["ConflictError"] == 0, "writes without cas must not conflict"
    await asyncio.to_thread(server.start)
    async with VaultsideClient(server.addr, server.root_token, max_connections=32) as client:
        for ack in acks:
            got = await client.read_secret(ack.path, version=ack.version)
            assert not isinstance(got, NotModified)
            assert got.data == {"v": ack.value}, f"{ack.path}@{ack.version} differs"
        acked_paths = {a.path for a in acks}
        torn: list[str] = []
        for path, values in attempted.items():
            try:
                got = await client.read_secret(path)
            except errors.NotFoundError:
                assert path not in acked_paths, f"acknowledged {path} is gone"
                continue
            except errors.VaultsideError as exc:  # a 500/integrity error = torn record
                torn.append(f"{path}: {type(exc).__name__}: {exc.message}")
                continue
            assert not isinstance(got, NotModified)
            if got.data.get("v") not in values:
                torn.append(f"{path}: latest value was never written")
        assert torn == []
        # and the server still takes writes after recovery
        meta = await client.write_secret("crash/after", {"v": "ok"})
        assert meta.version == 1
