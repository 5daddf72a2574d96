"""Anonymous and bad-token floods: audit growth, and what a valid token sees meanwhile.

Run: ``.venv/bin/python bench/bench_auth_flood.py [--duration 10] [--rounds 5]``.
Starts ``vaultside serve --dev`` on loopback (file audit sink, default settings) and measures:

(a) ``wrk`` (64 connections, 2 threads) sends requests with **no token** for ``--duration``
    seconds; meanwhile one valid low-privilege token reads a secret every 20 ms. Reported:
    how much the audit files grew (target < 1 MB), the flood's request rate, and the valid
    token's statuses and p50/p99 latency (target: all 200, p99 < 100 ms), next to the same
    probe on the idle server.
(b) 30 bad tokens in parallel from one address, then the valid token from that address,
    ``--rounds`` times: its status and latency (target: 200, unaffected), and how many of
    the bad tokens were answered within 2 s (the per-client failure budget).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.services.process import remove_tree, short_tempdir  # noqa: E402
from tests.integration.services.vaultside_server import (  # noqa: E402
    VaultsideServer,
    VaultsideServerFactory,
)
from tests.security.flood import bogus_token, call, low_privilege_token, parallel_get  # noqa: E402

THREADS = 2
CONNECTIONS = 64
PROBE_EVERY = 0.02


def audit_bytes(data_dir: Path) -> int:
    """Total size of the audit file and its rotated files."""
    return sum(p.stat().st_size for p in data_dir.glob("audit.log*") if p.is_file())


def audit_tail(data_dir: Path, skip: int) -> list[dict[str, object]]:
    """The audit records written after the first ``skip`` bytes (single file: no rotation)."""
    raw = (data_dir / "audit.log").read_bytes()[skip:]
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


async def probe(url: str, token: str, stop: asyncio.Event) -> list[tuple[int, float]]:
    """GET ``url`` with ``token`` every 20 ms until ``stop``: (status, seconds) each."""
    out: list[tuple[int, float]] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                out.append((resp.status, time.perf_counter() - started))
            await asyncio.sleep(PROBE_EVERY)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[tuple[int, float]]) -> str:
    ms = [s * 1000 for _, s in samples]
    ok = sum(1 for st, _ in samples if st == 200)
    return (
        f"{ok}/{len(samples)} x 200, p50 {statistics.median(ms):.1f} ms,"
        f" p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms"
    )


async def timed_probe(url: str, token: str, seconds: float) -> list[tuple[int, float]]:
    stop = asyncio.Event()
    task = asyncio.ensure_future(probe(url, token, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


async def flood_a(server: VaultsideServer, token: str, duration: int) -> None:
    url = f"{server.addr}/v1/secrets/app/db"
    idle = await timed_probe(url, token, 3.0)
    before = audit_bytes(server.data_dir)
    stop = asyncio.Event()
    task = asyncio.ensure_future(probe(url, token, stop))
    wrk = await asyncio.create_subprocess_exec(
        "wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", url,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await wrk.communicate()
    stop.set()
    during = await task
    await asyncio.sleep(0.5)
    grown = audit_bytes(server.data_dir) - before
    await asyncio.sleep(11)  # the default 10 s summary interval closes
    records = audit_tail(server.data_dir, before)
    anonymous = [r for r in records if r["accessor"] is None]
    summaries = [r for r in anonymous if r["operation"] == "summary"]
    counted = sum(int(r["extra"]["count"]) for r in summaries)  # type: ignore[index]
    anon_bytes = sum(len(json.dumps(r, separators=(",", ":"))) + 1 for r in anonymous)
    text = out.decode()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    print(f"(a) unauthenticated wrk flood, {duration} s, {CONNECTIONS} connections:")
    print(f"    flood: {total.group(1) if total else '?'} requests,"
          f" {rate.group(1) if rate else '?'} req/s,"
          f" non-2xx {non2xx.group(1) if non2xx else '?'}")  # fmt: skip
    print(f"    audit growth: {grown} bytes ({grown / 1e6:.3f} MB; target < 1 MB)")
    print(
        f"    of which anonymous: {len(anonymous)} records, ~{anon_bytes} bytes"
        f" ({len(summaries)} summaries counting {counted}; individual + counted ="
        f" {len(anonymous) - len(summaries) + counted}); the rest: the valid token's probes"
    )
    print(f"    valid token, idle server : {summary(idle)}")
    print(f"    valid token, during flood: {summary(during)} (target: all 200, p99 < 100 ms)")


async def flood_b(server: VaultsideServer, token: str, rounds: int) -> None:
    url = f"{server.addr}/v1/secrets/app/db"
    print(f"(b) 30 parallel bad tokens from one address, then the valid token, {rounds} rounds:")
    for r in range(rounds):
        async with asyncio.TaskGroup() as group:
            bad = group.create_task(parallel_get(url, [bogus_token() for _ in range(30)]))
            await asyncio.sleep(0.5)
            started = time.perf_counter()
            status, _ = await asyncio.to_thread(
                call, server.addr, "GET", "/v1/secrets/app/db", token
            )
            took = (time.perf_counter() - started) * 1000
        answers = bad.result()
        early = sum(1 for a in answers if a.at < 2.0)
        statuses = sorted({a.status for a in answers})
        print(
            f"    round {r + 1}: valid token {status} in {took:.1f} ms;"
            f" bad tokens answered within 2 s: {early}/30 (statuses {statuses})"
        )


async def main_async(args: argparse.Namespace) -> None:
    root = short_tempdir("bench-flood")
    factory = VaultsideServerFactory(root)
    try:
        server = factory(VAULTSIDE_LOG_LEVEL="WARNING")
        token = low_privilege_token(server.addr, server.root_token)
        status, _ = call(
            server.addr, "PUT", "/v1/secrets/app/db", server.root_token, {"data": {"k": "v"}}
        )
        assert status == 200, status
        print(f"load average before: {os.getloadavg()}")
        await flood_a(server, token, args.duration)
        await flood_b(server, token, args.rounds)
        print(f"load average after: {os.getloadavg()}")
    finally:
        factory.close()
        remove_tree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (Debian package wrk)")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
