"""Storage backends side by side: SqliteStorage vs PostgresStorage, in one process.

Run: ``.venv/bin/python bench/bench_storage.py [--duration 3] [--rounds 3] [--concurrency 64]``
(``make bench``). Starts a throwaway PostgreSQL cluster (Debian's binaries, ``fsync=on``, the
default ``synchronous_commit=on``) and a SQLite file (WAL, ``synchronous=FULL``) in temp dirs,
runs each operation against both with N concurrent coroutines for D seconds, interleaved
round by round, and prints the median ops/s and p99 latency of the rounds plus the ratio
PostgreSQL/SQLite. Values are 200 random bytes (about a sealed two-field secret).

This is the raw storage seam, below encryption and HTTP: it shows what the backend costs,
not what a client sees.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.services.postgres import PostgresCluster
from vaultside.errors import ConflictError
from vaultside.storage.base import Put, StorageBackend
from vaultside.storage.postgres import PostgresStorage
from vaultside.storage.sqlite import SqliteStorage

KEYS = 1000
VALUE = os.urandom(200)

Op = Callable[[StorageBackend, int], Awaitable[object]]


async def op_get(b: StorageBackend, i: int) -> object:
    return await b.get(f"bench/k{i % KEYS:04d}")


async def op_put(b: StorageBackend, i: int) -> object:
    return await b.put(f"bench/k{i % KEYS:04d}", VALUE)


async def op_cas(b: StorageBackend, i: int) -> object:
    key = f"bench/k{i % KEYS:04d}"
    rec = await b.get(key)
    try:
        return await b.put(key, VALUE, expect_revision=rec.revision if rec else 0)
    except ConflictError:
        return None  # another worker won the race: a valid outcome, still one round trip


async def op_batch(b: StorageBackend, i: int) -> object:
    n = i % KEYS
    await b.write_batch([Put(f"bench/meta{n:04d}", VALUE), Put(f"bench/data{n:04d}/{i}", VALUE)])
    return None


async def op_list(b: StorageBackend, i: int) -> object:
    return await b.list("bench/k", after=f"bench/k{i % KEYS:04d}", limit=50)


OPS: dict[str, Op] = {
    "get": op_get,
    "put": op_put,
    "cas get+put": op_cas,
    "batch(2 puts)": op_batch,
    "list(50)": op_list,
}


async def measure(
    b: StorageBackend, op: Op, duration: float, concurrency: int
) -> tuple[float, float]:
    """(ops/s, p99 ms) of ``op`` with ``concurrency`` workers for ``duration`` seconds."""
    latencies: list[float] = []
    counter = iter(range(1 << 62))
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        while (start := time.perf_counter()) < deadline:
            await op(b, next(counter))
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    return len(latencies) / elapsed, p99


async def run(args: argparse.Namespace, dsn: str, tmp: Path) -> None:
    backends: dict[str, StorageBackend] = {
        "sqlite": SqliteStorage(tmp / "bench.db"),
        "postgres": PostgresStorage(dsn, pool_max=args.pool_max),
    }
    for b in backends.values():
        await b.open()
        for i in range(KEYS):
            await b.put(f"bench/k{i:04d}", VALUE)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for rnd in range(args.rounds):
            order = list(backends) if rnd % 2 == 0 else list(reversed(backends))
            for op_name, op in OPS.items():
                for name in order:
                    r = await measure(backends[name], op, args.duration, args.concurrency)
                    results.setdefault((op_name, name), []).append(r)
    finally:
        for b in backends.values():
            await b.close()
    print(
        f"\nstorage seam, {args.concurrency} concurrent coroutines, {args.duration:g} s x "
        f"{args.rounds} rounds (median), pool_max={args.pool_max}"
    )
    print(f"{'operation':<15}{'sqlite ops/s':>14}{'p99 ms':>9}{'postgres ops/s':>16}{'p99 ms':>9}"
          f"{'pg/sqlite':>11}")  # fmt: skip
    for op_name in OPS:
        s = results[(op_name, "sqlite")]
        p = results[(op_name, "postgres")]
        s_ops, s_p99 = statistics.median(r[0] for r in s), statistics.median(r[1] for r in s)
        p_ops, p_p99 = statistics.median(r[0] for r in p), statistics.median(r[1] for r in p)
        print(f"{op_name:<15}{s_ops:>14,.0f}{s_p99:>9.1f}{p_ops:>16,.0f}{p_p99:>9.1f}"
              f"{p_ops / s_ops:>10.2f}x")  # fmt: skip


def main() -> None:
    """Parse arguments, start PostgreSQL, run the comparison, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pool-max", type=int, default=10)
    args = parser.parse_args()
    cluster = PostgresCluster.create(durable=True)
    tmp = Path(tempfile.mkdtemp(prefix="vs-bench-storage-"))
    try:
        asyncio.run(run(args, cluster.dsn, tmp))
    finally:
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
