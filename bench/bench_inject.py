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
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.services.docker_engine import DockerEngine, build_busybox_image  # noqa: E402
from tests.integration.services.process import (  # noqa: E402
    remove_tree,
    short_tempdir,
    spawn,
    terminate,
    wait_until,
)
from tests.integration.services.vaultside_server import (  # noqa: E402
    VaultsideServer,
    VaultsideServerFactory,
)
from vaultside.inject import tmpfs  # noqa: E402

SAFE = ["--user", "1000:1000", "--read-only", "--memory", "64m", "--pids-limit", "64"]


def api(server: VaultsideServer, method: str, path: str, body: Any = None) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{server.addr}/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {server.root_token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def docker(engine: DockerEngine, *args: str) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(["docker", *args], env=engine.env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:3])} failed: {res.stderr.strip()}")
    return elapsed


def bench_start(engine: DockerEngine, image: str, plugin: str, runs: int) -> dict[str, float]:
    opts = [
        "secret.db_password=kv:app/db#password",
        "secret.api_token=kv:app/api#token",
        "template.db.url=postgres://{{ kv:app/db#user }}:{{ kv:app/db#password }}@db/app",
    ]
    with_plugin: list[float] = []
    plain: list[float] = []
    volumes: list[str] = []
    base = ["run", "--rm", "--network", "none", *SAFE, "--label", "io.vaultside.role=web"]
    for i in range(runs + 2):
        vol = f"bench{secrets.token_hex(4)}"
        volumes.append(vol)
        mount = ",".join(
            ["type=volume", f"volume-driver={plugin}", f"src={vol}", "dst=/run/secrets"]
            + [f"volume-opt={o}" for o in opts]
        )
        a = docker(engine, *base, "--mount", mount, image, "true")
        b = docker(engine, *base, "--tmpfs", "/run/secrets", image, "true")
        if i >= 2:  # the first two are warm-up
            with_plugin.append(a)
            plain.append(b)
    docker(engine, "volume", "rm", *volumes)
    mp, mb = statistics.median(with_plugin), statistics.median(plain)
    return {"plugin_median_ms": mp * 1000, "tmpfs_median_ms": mb * 1000, "ratio": mp / mb}


def bench_sidecar(
    server: VaultsideServer, root: Path, token_file: Path, updates: int
) -> dict[str, float]:
    shared = root / "shared"
    tmpfs.mount_tmpfs(shared, size_bytes=1 << 20, uid=1000, gid=1000)
    log = root / "sidecar.log"
    ready = root / "ready"
    argv = [
        sys.executable, "-m", "vaultside", "sidecar", "--dir", str(shared),
        "--addr", server.addr, "--token-file", str(token_file), "--ready-file", str(ready),
        "--secret", "password=kv:app/db#password", "--opt", "uid=1000", "--opt", "gid=1000",
    ]  # fmt: skip
    proc = spawn(argv, log)
    latencies: list[float] = []
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
        tmpfs.wipe_and_unmount(shared)
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
    engine = DockerEngine.start()
    factory = VaultsideServerFactory(root / "srv")
    plugin_proc = None
    name = f"vaultside-bench-{secrets.token_hex(3)}"
    try:
        image = build_busybox_image(engine)
        server = factory()
        api(
            server,
            "PUT",
            "secrets/app/db",
            {"data": {"user": "app", "password": "p" + secrets.token_hex(8)}},
        )
        api(server, "PUT", "secrets/app/api", {"data": {"token": "t" + secrets.token_hex(8)}})
        api(
            server,
            "PUT",
            "sys/policies/web",
            {"rules": [{"path": "secrets/app/*", "capabilities": ["read"]}]},
        )
        token = api(server, "POST", "auth/token/create", {"policies": ["web"]})["auth"]["token"]
        token_file = root / "web.token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        (root / "roles.toml").write_text('[roles.web]\ntoken_file = "web.token"\n')
        env = {k: v for k, v in engine.env.items() if not k.startswith("VAULTSIDE_")}
        env |= {"VAULTSIDE_ADDR": server.addr, "VAULTSIDE_DATA_DIR": str(root / "plugin")}
        sock = Path("/run/docker/plugins") / f"{name}.sock"
        plugin_proc = spawn(
            [sys.executable, "-m", "vaultside", "plugin", "--name", name,
             "--roles", str(root / "roles.toml"), "--mount-root", str(root / "mounts"),
             "--docker-host", engine.base_url],
            root / "plugin.log", env=env, cwd=root,
        )  # fmt: skip
        wait_until(
            sock.is_socket,
            timeout=30,
            what="plugin",
            proc=plugin_proc,
            log_path=root / "plugin.log",
        )
        start = bench_start(engine, image, name, args.runs)
        mount_ms = [
            float(rec["ms"])
            for line in (root / "plugin.log").read_text().splitlines()
            if line.startswith("{") and (rec := json.loads(line)).get("event") == "volume mounted"
        ]
        print(
            f"plugin-side Mount (admission + resolve + tmpfs + writes), {len(mount_ms)} mounts: "
            f"median {statistics.median(mount_ms):.1f} ms, p90 {pct(mount_ms, 90):.1f} ms"
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
        terminate(plugin_proc, grace=10)
        factory.close()
        engine.close()
        (Path("/run/docker/plugins") / f"{name}.sock").unlink(missing_ok=True)
        remove_tree(root)


if __name__ == "__main__":
    main()
