"""Replicas: HTTP read/write req/s with 1, 2, 3 servers on one PostgreSQL vs one SQLite server.

Run: ``.venv/bin/python bench/bench_replicas.py [--duration 5] [--rounds 3]`` (``make bench``).
Starts a throwaway PostgreSQL cluster (``fsync=on``, like production), three ``vaultside serve
--dev`` processes on it (one worker each, shared root key file, file audit sink) and one
``vaultside serve --dev`` on SQLite. ``pg-N`` drives the first N PostgreSQL servers at once:
N ``wrk`` processes (Debian's), the same 64 connections split between them, summed req/s,
worst p99. Targets are interleaved round by round after a warm-up; the median of the rounds
is printed, with the ratio to SQLite and the CPU (in cores) each part used during the run —
which shows where scaling stops on this machine.

Reads: ``GET`` of one two-field secret. Writes: a new version of one of 1,000 paths per
request. A non-root token whose policy allows only the bench paths is used throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.services.postgres import PostgresCluster
from tests.integration.services.vaultside_server import VaultsideServer as Server
from tests.integration.services.vaultside_server import VaultsideServerFactory

CONNECTIONS = 64
WRITE_PATHS = 1000
VALUE_BODY = {"data": {"password": secrets.token_urlsafe(24), "user": "bench"}}
CLK_TCK = os.sysconf("SC_CLK_TCK")

_WRITE_LUA = """
local n = {offset}
local body = '{body}'
request = function()
  n = n + 1
  return wrk.format("PUT", "/v1/secrets/bench/w/" .. (n % {paths}), nil, body)
end
"""


def call(method: str, url: str, token: str = "", body: object = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode()
    )
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:
        return 0, {}


def start_server(servers: VaultsideServerFactory, key_file: Path, **env: str) -> Server:
    """``vaultside serve --dev`` (log level WARNING) with ``key_file`` and ``env`` settings."""
    return servers(VAULTSIDE_LOG_LEVEL="WARNING", VAULTSIDE_SEAL__KEY_FILE=str(key_file), **env)


def bench_token(server: Server) -> str:
    rules = [{"path": "secrets/bench/**", "capabilities": ["read", "create", "update"]}]
    status, _ = call(
        "PUT", f"{server.addr}/v1/sys/policies/bench", server.root_token, {"rules": rules}
    )
    assert status in (200, 204), status
    status, obj = call(
        "POST",
        f"{server.addr}/v1/auth/token/create",
        server.root_token,
        {"policies": ["bench"], "ttl": 7200},
    )
    assert status == 200, status
    token = str(obj["auth"]["token"])
    assert call("PUT", f"{server.addr}/v1/secrets/bench/app", token, VALUE_BODY)[0] == 200
    return token


@dataclass
class Run:
    rps: float
    p99_ms: float
    errors: int
    cpu: dict[str, float]


def parse_wrk(text: str) -> tuple[float, float, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    assert m, text
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return rps, p99, errors


def cpu_ticks(groups: dict[str, list[int]]) -> dict[str, int]:
    """utime+stime (with reaped children) of each group's processes and their descendants."""
    out = {}
    for name, pids in groups.items():
        total = 0
        for pid in descendants(pids):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(x) for x in fields[11:15])
        out[name] = total
    return out


def descendants(pids: list[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    seen, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return seen


def load(
    servers: list[Server],
    token: str,
    kind: str,
    duration: int,
    work: Path,
    cpu_groups: dict[str, list[int]],
) -> Run:
    n = len(servers)
    procs = []
    start_ticks = cpu_ticks(cpu_groups)
    started = time.monotonic()
    for i, server in enumerate(servers):
        conns = CONNECTIONS // n + (1 if i < CONNECTIONS % n else 0)
        argv = [
            "wrk",
            "-t",
            "2" if n == 1 else "1",
            "-c",
            str(conns),
            "-d",
            f"{duration}s",
            "--latency",
        ]
        argv += ["-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json"]
        if kind == "write":
            script = work / f"write-{i}.lua"
            body = json.dumps(VALUE_BODY)
            script.write_text(_WRITE_LUA.format(offset=i * 7919, body=body, paths=WRITE_PATHS))
            argv += ["-s", str(script), f"{server.addr}/v1/secrets/bench/w/0"]
        else:
            argv.append(f"{server.addr}/v1/secrets/bench/app")
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    groups = dict(cpu_groups, wrk=[p.pid for p in procs])
    # wrk's own CPU is read just before it exits (a reaped process leaves /proc).
    time.sleep(max(duration - 0.3, 0.1))
    wrk_ticks = cpu_ticks({"wrk": groups["wrk"]})["wrk"]
    outs = [p.communicate()[0] for p in procs]
    wall = time.monotonic() - started
    end_ticks = cpu_ticks(cpu_groups)
    parsed = [parse_wrk(o) for o in outs]
    cpu = {k: (end_ticks[k] - start_ticks[k]) / CLK_TCK / wall for k in cpu_groups}
    cpu["wrk"] = wrk_ticks / CLK_TCK / max(duration - 0.3, 0.1)
    return Run(
        sum(r for r, _, _ in parsed),
        max(p for _, p, _ in parsed),
        sum(e for _, _, e in parsed),
        cpu,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pool-max", type=int, default=10, help="storage.postgres_pool_max")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="vs-bench-replicas-"))
    cluster = PostgresCluster.create(durable=True)
    servers = VaultsideServerFactory(work / "servers")
    try:
        dsn_file = work / "pg.dsn"
        dsn_file.write_text(cluster.dsn)
        dsn_file.chmod(0o600)
        sqlite = start_server(servers, work / "sqlite.key")
        pg_env = {
            "VAULTSIDE_STORAGE__KIND": "postgres",
            "VAULTSIDE_STORAGE__POSTGRES_DSN_FILE": str(dsn_file),
            "VAULTSIDE_STORAGE__POSTGRES_POOL_MAX": str(args.pool_max),
        }
        pgs = [start_server(servers, work / "root.key", **pg_env) for _ in range(3)]
        tokens = {"sqlite": bench_token(sqlite), "pg": bench_token(pgs[0])}
        assert cluster.proc is not None
        targets = {
            "sqlite-1": [sqlite],
            "pg-1": pgs[:1],
            "pg-2": pgs[:2],
            "pg-3": pgs[:3],
        }
        results: dict[tuple[str, str], list[Run]] = {}
        for kind in ("read", "write"):
            for name, group in targets.items():  # warm-up
                token = tokens["sqlite" if name.startswith("sqlite") else "pg"]
                load(group, token, kind, 2, work, {})
            for rnd in range(args.rounds):
                order = list(targets.items())
                if rnd % 2:
                    order.reverse()
                for name, group in order:
                    token = tokens["sqlite" if name.startswith("sqlite") else "pg"]
                    cpu_groups = {
                        "vaultside": [s.proc.pid for s in group],
                        "postgres": [cluster.proc.pid],
                    }
                    run = load(group, token, kind, args.duration, work, cpu_groups)
                    results.setdefault((name, kind), []).append(run)
                    print(
                        f"  round {rnd + 1} {kind:5} {name:9} {run.rps:8.0f} req/s", file=sys.stderr
                    )
        report(results, targets, args)
    finally:
        servers.close()
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


def report(
    results: dict[tuple[str, str], list[Run]],
    targets: dict[str, list[Server]],
    args: argparse.Namespace,
) -> None:
    print(
        f"\nvaultside replicas — {args.rounds} interleaved rounds of {args.duration} s, "
        f"{CONNECTIONS} connections total, {os.cpu_count()} cores,"
        f" postgres_pool_max {args.pool_max}\n"
    )
    print(
        "| target | kind | req/s (median) | vs sqlite-1 | p99 ms | errors"
        " | CPU cores: vaultside / postgres / wrk |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for kind in ("read", "write"):
        base = statistics.median(r.rps for r in results[("sqlite-1", kind)])
        for name in targets:
            runs = results[(name, kind)]
            rps = statistics.median(r.rps for r in runs)
            p99 = statistics.median(r.p99_ms for r in runs)
            errors = sum(r.errors for r in runs)
            cpu = {
                k: statistics.median(r.cpu.get(k, 0.0) for r in runs)
                for k in ("vaultside", "postgres", "wrk")
            }
            print(
                f"| {name} | {kind} | {rps:,.0f} | {rps / base:.2f} | {p99:.1f} | {errors} |"
                f" {cpu['vaultside']:.2f} / {cpu['postgres']:.2f} / {cpu['wrk']:.2f} |"
            )


if __name__ == "__main__":
    main()
