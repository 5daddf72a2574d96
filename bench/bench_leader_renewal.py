"""Leader renewal: what a short ``rotation.lease_ttl`` costs PostgreSQL (issue 16).

Run: ``.venv/bin/python bench/bench_leader_renewal.py [--seconds 20] [--rounds 2]``.
Starts a throwaway PostgreSQL cluster and, for each ``rotation.lease_ttl`` compared (30 s, the
old default; 4 s, the new one; 2 s), three idle ``vaultside serve --dev`` servers on it. Over
``--seconds`` it counts the database's committed transactions (``pg_stat_database``; the
bench's own two reads subtracted) and the CPU (cores) of all PostgreSQL processes and of the
three servers. Configurations are interleaved round by round; the median round is printed,
with the ratio to 30 s. Idle servers still renew their leases, so the difference between
rows is the renewal cost.
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
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_replicas import CLK_TCK, Server, cpu_ticks, start_server

from tests.integration.services.postgres import PostgresCluster

TTLS = (30.0, 4.0, 2.0)


async def commits(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'postgres'"
        )
        return int(value)
    finally:
        await conn.close()


def measure(cluster: PostgresCluster, servers: list[Server], seconds: float) -> dict[str, float]:
    assert cluster.proc is not None
    groups = {"postgres": [cluster.proc.pid], "vaultside": [s.proc.pid for s in servers]}
    # pg_stat_database is updated when a backend reports (at most every 0.5 s or at idle).
    time.sleep(1.0)
    x0, t0, c0 = asyncio.run(commits(cluster.dsn)), time.monotonic(), cpu_ticks(groups)
    time.sleep(seconds)
    c1 = cpu_ticks(groups)
    time.sleep(1.0)
    x1 = asyncio.run(commits(cluster.dsn))
    elapsed = time.monotonic() - t0 - 1.0
    return {
        "tx_per_s": (x1 - x0 - 2) / elapsed,
        "pg_cores": (c1["postgres"] - c0["postgres"]) / CLK_TCK / elapsed,
        "vs_cores": (c1["vaultside"] - c0["vaultside"]) / CLK_TCK / elapsed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vs-bench-leader-"))
    cluster = PostgresCluster.create(durable=True)
    results: dict[float, list[dict[str, float]]] = {}
    try:
        dsn_file = work / "pg.dsn"
        dsn_file.write_text(cluster.dsn)
        dsn_file.chmod(0o600)
        for rnd in range(args.rounds):
            order = list(TTLS) if rnd % 2 == 0 else list(reversed(TTLS))
            for ttl in order:
                env = {
                    "VAULTSIDE_STORAGE__KIND": "postgres",
                    "VAULTSIDE_STORAGE__POSTGRES_DSN_FILE": str(dsn_file),
                    "VAULTSIDE_SEAL__KEY_FILE": str(work / "root.key"),
                    "VAULTSIDE_ROTATION__LEASE_TTL": str(ttl),
                }
                servers = [start_server(work, f"r{rnd}-{ttl:g}-{i}", env) for i in range(3)]
                try:
                    time.sleep(3.0)  # past start-up work
                    run = measure(cluster, servers, args.seconds)
                finally:
                    for server in servers:
                        server.stop()
                results.setdefault(ttl, []).append(run)
                print(f"  round {rnd + 1} lease_ttl {ttl:4g} s: {run}", file=sys.stderr)
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average: {os.getloadavg()}")
    print("| rotation.lease_ttl | takeover bound | tx/s (3 idle servers) | PostgreSQL cores |"
          " vaultside cores (3) |")  # fmt: skip
    print("|---|---|---|---|---|")
    base = statistics.median(r["tx_per_s"] for r in results[TTLS[0]])
    for ttl in TTLS:
        tx = statistics.median(r["tx_per_s"] for r in results[ttl])
        pg = statistics.median(r["pg_cores"] for r in results[ttl])
        vs = statistics.median(r["vs_cores"] for r in results[ttl])
        print(f"| {ttl:g} s | {ttl * 4 / 3:.1f} s | {tx:.2f} ({tx / base:.1f}x) | {pg:.4f} |"
              f" {vs:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
