"""Injection benchmark: container start with the volume plugin vs plain ``--tmpfs``, and the
sidecar's update-to-visible latency. Real dockerd, real vaultside server, one run.

    sudo .venv/bin/python bench/bench_inject.py [--runs 30] [--updates 50]

1. Container start: ``docker run --rm`` (busybox ``true``) with the plugin delivering 3 secrets
   into a fresh volume, vs ``--tmpfs /run/secrets`` with none. Runs are interleaved (A, B, A,
   B, ...) because the host's speed drifts. Target: median ratio <= 1.15.
2. Sidecar: default settings; a secret is updated through the API and the time until the new
   content is in the rendered file (the same tmpfs the app container bind-mounts) is measured.
   Target: p99 < 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from percentile import pct  # noqa: E402

from tests.integration.services.process import (  # noqa: E402
    remove_tree,
    short_tempdir,
    spawn,
    terminate,
    wait_until,
)
from tests.integration.services.vaultside_server import VaultsideServer  # noqa: E402
from tests.integration.stack import (  # noqa: E402
    READ_APP,
    SAFE,
    Stack,
    api,
    make_token,
    own_engine,
    plugin_stack,
    serving,
    shared_tmpfs,
    sidecar_argv,
    write_roles,
)


def docker(stack: Stack, *args: str) -> float:
    """Seconds ``docker ARGS`` took; ``RuntimeError`` if it failed."""
    t0 = time.perf_counter()
    stack.docker_ok(*args)
    return time.perf_counter() - t0


def bench_start(stack: Stack, runs: int) -> dict[str, float]:
    opts = {
        "secret.db_password": "kv:app/db#password",
        "secret.api_token": "kv:app/api#token",
        "template.db.url": "postgres://{{ kv:app/db#user }}:{{ kv:app/db#password }}@db/app",
    }
    with_plugin: list[float] = []
    plain: list[float] = []
    base = ["run", "--rm", "--network", "none", *SAFE, "--label", "io.vaultside.role=web"]
    for i in range(runs + 2):
        mount = stack.mount_arg(stack.volume(), opts)
        a = docker(stack, *base, "--mount", mount, stack.image, "true")
        b = docker(stack, *base, "--tmpfs", "/run/secrets", stack.image, "true")
        if i >= 2:  # the first two are warm-up
            with_plugin.append(a)
            plain.append(b)
    mp, mb = statistics.median(with_plugin), statistics.median(plain)
    return {"plugin_median_ms": mp * 1000, "tmpfs_median_ms": mb * 1000, "ratio": mp / mb}


def bench_sidecar(
    server: VaultsideServer, root: Path, token_file: Path, updates: int
) -> dict[str, float]:
    log = root / "sidecar.log"
    ready = root / "ready"
    latencies: list[float] = []
    with shared_tmpfs(root / "shared") as shared:
        argv = sidecar_argv(
            server, token_file, shared, {"password": "kv:app/db#password"},
            "--ready-file", str(ready), "--opt", "uid=1000", "--opt", "gid=1000",
        )  # fmt: skip
        proc = spawn(argv, log)
        try:
            wait_until(ready.exists, timeout=30, what="sidecar", proc=proc, log_path=log)
            target = shared / "password"
            for _ in range(updates):
                time.sleep(random.uniform(0.05, 0.4))  # de-phase from the poll interval
                value = f"p{secrets.token_hex(12)}"
                t0 = time.perf_counter()
                api(server, "PUT", "secrets/app/db", {"data": {"user": "app", "password": value}})
                while target.read_text() != value:
                    if time.perf_counter() - t0 > 10:
                        raise SystemExit("sidecar did not pick up an update within 10 s")
                    time.sleep(0.002)
                latencies.append(time.perf_counter() - t0)
        finally:
            terminate(proc, grace=10)
    return {
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--updates", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (dockerd, tmpfs mounts, plugin socket)")
    root = short_tempdir("bench-inj")
    try:
        with own_engine() as (engine, image), serving(root) as server:
            db = {"user": "app", "password": "p" + secrets.token_hex(8)}
            api(server, "PUT", "secrets/app/db", {"data": db})
            api(server, "PUT", "secrets/app/api", {"data": {"token": "t" + secrets.token_hex(8)}})
            token_file = root / "web.token"
            make_token(server, "web", READ_APP, token_file)
            write_roles(root, {"web": {"token_file": "web.token"}})
            with plugin_stack(engine, image, server, root, prefix="vaultside-bench") as stack:
                start = bench_start(stack, args.runs)
                mount_ms = [
                    float(rec["ms"])
                    for line in stack.plugin_log.read_text().splitlines()
                    if line.startswith("{")
                    and (rec := json.loads(line)).get("event") == "volume mounted"
                ]
            print(
                f"plugin-side Mount (admission + resolve + tmpfs + writes), {len(mount_ms)} "
                f"mounts: median {statistics.median(mount_ms):.1f} ms, "
                f"p90 {pct(mount_ms, 90):.1f} ms"
            )
            print(
                f"container start, median of {args.runs} interleaved runs: "
                f"plugin (3 secrets) {start['plugin_median_ms']:.0f} ms, "
                f"--tmpfs (none) {start['tmpfs_median_ms']:.0f} ms, "
                f"ratio {start['ratio']:.3f} (target <= 1.15)"
            )
            side = bench_sidecar(server, root, token_file, args.updates)
            print(
                f"sidecar update -> file visible, {args.updates} updates, default settings: "
                f"p50 {side['p50_ms']:.0f} ms, p99 {side['p99_ms']:.0f} ms, "
                f"max {side['max_ms']:.0f} ms (target p99 < 1000 ms)"
            )
    finally:
        remove_tree(root)


if __name__ == "__main__":
    main()
