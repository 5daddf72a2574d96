"""Rotation benchmark: re-delivery to 50 running containers, and an idle 10,000-policy scheduler.

    sudo .venv/bin/python bench/bench_rotation.py [--containers 50] [--rotations 10] [--idle 60]

1. Re-delivery: a real dockerd, ``vaultside serve --dev`` and ``vaultside plugin``. N running
   busybox containers each mount their own plugin volume holding ``kv:app/rot#token``, with
   label ``io.vaultside.on-rotate=signal:HUP``. Each rotation is ``POST /v1/rotation/rotate``
   (kv target); from the moment it returns (the new version was promoted just before) the
   host watches ``/proc/<container pid>/root/run/secrets/token`` — the file as the container
   sees it — until all N show the new value. Target: p99 of "all N see it" < 2 s.
2. Scheduler: 10,000 policies (every 1d, jitter 1h) in a SQLite-backed barrier store; a fresh
   scheduler loads them (time, memory growth) and then idles for ``--idle`` seconds with the
   real clock (lease renewal + generation check every 10 s). CPU seconds per hour of idle
   scheduling are extrapolated from the process CPU time over that window.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from percentile import pct  # noqa: E402

from tests.integration.services.process import remove_tree, short_tempdir  # noqa: E402
from tests.integration.services.vaultside_server import VaultsideServer  # noqa: E402
from tests.integration.stack import (  # noqa: E402
    READ_APP,
    Stack,
    api,
    make_token,
    own_engine,
    plugin_stack,
    serving,
    write_roles,
)
from tests.stores import new_key_file, open_barrier, rotation_service  # noqa: E402

# Smaller than the stack's SAFE limits: 50 of these run at once.
SAFE = ["--user", "1000:1000", "--read-only", "--memory", "32m", "--pids-limit", "16"]


def bench_redelivery(containers: int, rotations: int) -> dict[str, float]:
    root = short_tempdir("bench-rot")
    try:
        with own_engine() as (engine, image), serving(root) as server:
            api(server, "PUT", "secrets/app/rot", {"data": {"token": "t" + secrets.token_hex(16)}})
            api(server, "PUT", "rotation/policies/app/rot", {
                "every": "30d", "generator": {"kind": "token", "length": 40},
                "target": {"kind": "kv"},
            })  # fmt: skip
            rules = [*READ_APP, {"path": "consumers/*", "capabilities": ["update"]}]
            make_token(server, "web", rules, root / "web.token")
            write_roles(root, {"web": {"token_file": "web.token"}})
            env = {"VAULTSIDE_INJECT__ADMISSION__IMAGE_FINDINGS": "off"}
            with plugin_stack(engine, image, server, root, prefix="vaultside-rot", env=env) as st:
                return _redeliver(st, server, image, containers, rotations)
    finally:
        remove_tree(root)


def _redeliver(
    st: Stack, server: VaultsideServer, image: str, containers: int, rotations: int
) -> dict[str, float]:
    files: list[Path] = []
    for _ in range(containers):
        opts = {"secret.token": "kv:app/rot#token"}
        cid = st.docker_ok(
            "run", "-d", "--network", "none", *SAFE,
            "--label", "io.vaultside.role=web", "--label", "io.vaultside.on-rotate=signal:HUP",
            "--mount", st.mount_arg(st.volume(), opts), image,
            "sh", "-c", "trap 'true' HUP; while :; do sleep 1; done",
        )  # fmt: skip
        st.containers.append(cid)
        pid = st.docker_ok("inspect", "-f", "{{.State.Pid}}", cid)
        files.append(Path(f"/proc/{pid}/root/run/secrets/token"))
    print(f"{containers} containers running, each with its own plugin volume", flush=True)
    time.sleep(2)  # let the refresher learn every mount
    all_seen: list[float] = []
    each: list[float] = []
    rotate_ms: list[float] = []
    for _ in range(rotations):
        t_call = time.perf_counter()
        run = api(server, "POST", "rotation/rotate/app/rot", timeout=30)["run"]
        t0 = time.perf_counter()
        rotate_ms.append((t0 - t_call) * 1000)
        assert run["result"] == "ok", run
        new = api(server, "GET", "secrets/app/rot", timeout=30)["data"]["token"].encode()
        pending = set(range(containers))
        while pending:
            for i in list(pending):
                if files[i].read_bytes() == new:
                    each.append(time.perf_counter() - t0)
                    pending.discard(i)
            if time.perf_counter() - t0 > 30:
                raise SystemExit(f"{len(pending)} containers never saw the new value")
            time.sleep(0.005)
        all_seen.append(time.perf_counter() - t0)
        time.sleep(1)
    result = {
        "all_p50_ms": statistics.median(all_seen) * 1000,
        "all_p99_ms": pct(all_seen, 99) * 1000,
        "all_max_ms": max(all_seen) * 1000,
        "each_p50_ms": statistics.median(each) * 1000,
        "each_p99_ms": pct(each, 99) * 1000,
        "rotate_call_p50_ms": statistics.median(rotate_ms),
    }
    print(
        f"re-delivery to {containers} running containers, {rotations} rotations: "
        f"all see the new value p50 {result['all_p50_ms']:.0f} ms, p99 "
        f"{result['all_p99_ms']:.0f} ms, max {result['all_max_ms']:.0f} ms (target p99 < "
        f"2000 ms); per container p50 {result['each_p50_ms']:.0f} ms, p99 "
        f"{result['each_p99_ms']:.0f} ms; rotate call p50 "
        f"{result['rotate_call_p50_ms']:.0f} ms",
        flush=True,
    )
    return result


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def bench_scheduler(policies: int, idle: float) -> dict[str, float]:
    from vaultside.auth.policy import Authorizer, PolicyStore
    from vaultside.auth.tokens import TokenStore
    from vaultside.clock import SystemClock
    from vaultside.kv.store import KVStore
    from vaultside.rotation.authority import Grant, RotationAuthority
    from vaultside.rotation.policy import parse_policy
    from vaultside.rotation.state import RotationState
    from vaultside.storage.sqlite import SqliteStorage
    from vaultside.wiring.keyspace import view

    root = short_tempdir("bench-sched")
    clock = SystemClock()
    try:
        key = new_key_file(root / "root.key")
        barrier = await open_barrier(SqliteStorage(root / "vs.db"), key, clock=clock)
        kv = KVStore(view(barrier, "kv"), clock=clock)
        tokens = TokenStore(view(barrier, "tokens"), clock=clock)
        authority = RotationAuthority(
            tokens, Authorizer(PolicyStore(view(barrier, "policies"), clock=clock))
        )
        _, root_info = await tokens.create_root()
        grant = Grant(root_info.accessor, root_info.policies, "bench", clock.now())
        seed = rotation_service(kv, barrier, clock, authority)
        doc = {"every": "1d", "jitter": "1h", "generator": {"kind": "password"},
               "target": {"kind": "kv"}}  # fmt: skip
        policy = parse_policy(doc)
        t = time.perf_counter()
        now = clock.now()
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await seed.store.put_policy(f"bench/s{i:05d}", policy, grant)
                await seed.store.put_state(
                    f"bench/s{i:05d}", RotationState(next_run=now + 3600 + (i % 86400))
                )

        await asyncio.gather(*(one(i) for i in range(policies)))
        write_s = time.perf_counter() - t
        svc = rotation_service(kv, barrier, clock, authority)
        cpu0, t0 = time.process_time(), time.perf_counter()
        await svc.scheduler.tick()  # takes the lease, recovers, loads all policies
        load_s, load_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        # What the loaded schedule keeps (heap + planned map), measured on a second load.
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        await svc.scheduler.reload()
        kept = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert len(svc.scheduler) == policies, len(svc.scheduler)
        task = asyncio.create_task(svc.scheduler.run())
        await asyncio.sleep(0.5)
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await barrier.close()
        return {
            "policies": policies,
            "seed_s": write_s,
            "load_s": load_s,
            "load_cpu_s": load_cpu,
            "schedule_mib": kept / 2**20,
            "rss_mib": rss_kib() / 1024,
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "idle_cpu_s_per_hour": cpu / wall * 3600,
            "idle_window_s": wall,
        }
    finally:
        remove_tree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--rotations", type=int, default=10)
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--skip-containers", action="store_true")
    parser.add_argument("--skip-scheduler", action="store_true")
    args = parser.parse_args()
    if not args.skip_scheduler:
        report_scheduler(asyncio.run(bench_scheduler(args.policies, args.idle)))
    if args.skip_containers:
        return
    if os.geteuid() != 0:
        raise SystemExit("re-delivery needs root (dockerd, tmpfs mounts, plugin socket)")
    bench_redelivery(args.containers, args.rotations)


def report_scheduler(sched: dict[str, float]) -> None:
    print(
        f"scheduler, {sched['policies']:.0f} policies: seeded in {sched['seed_s']:.1f} s; "
        f"first load {sched['load_s']:.2f} s ({sched['load_cpu_s']:.2f} s CPU); the loaded "
        f"schedule holds {sched['schedule_mib']:.1f} MiB (process RSS {sched['rss_mib']:.0f} "
        f"MiB, peak {sched['max_rss_mib']:.0f} MiB); idle "
        f"CPU {sched['idle_cpu_s_per_hour']:.2f} s per hour (over {sched['idle_window_s']:.0f} s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
