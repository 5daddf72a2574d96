"""Brokered KV v2 reads: through vaultside (cache warm) vs straight from OpenBao, one run.

Run: ``.venv/bin/python bench/bench_broker.py [--duration 10] [--rounds 3] [--workers 1]``.
Starts, on loopback, a real OpenBao dev server (file audit device on, as in the test fixture)
and ``vaultside serve --dev`` with a broker ``corp`` pointing at it (audit on too). Both are
read with a non-root token whose policy allows only the bench path, by the same ``wrk``
(same threads and connections), rounds interleaved; the median round is reported. A second
OpenBao without audit, read with its root token, shows OpenBao's best case.

Then the single-flight check: 100 concurrent requests through vaultside for one cold secret,
counting the reads of that path in OpenBao's audit log (must be exactly 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import hvac

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.services.openbao import OpenBaoServer, find_bao  # noqa: E402
from tests.integration.services.process import free_port, short_tempdir  # noqa: E402
from tests.integration.services.vaultside_server import VaultsideServerFactory  # noqa: E402

THREADS = 2
CONNECTIONS = 64


def wrk(url: str, header: str, duration: int) -> tuple[float, str]:
    """Requests/s and p99 latency of one wrk run (non-2xx responses make it fail)."""
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency"]
    out = subprocess.run(
        [*argv, "-H", header, url], check=True, capture_output=True, text=True
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    return rps, p99


async def single_flight(addr: str, token: str, path: str, n: int) -> list[int]:
    headers = {"Authorization": f"Bearer {token}"}
    conn = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one() -> int:
            async with s.get(f"{addr}/v1/broker/corp/secret/{path}", headers=headers) as r:
                await r.read()
                return r.status

        return await asyncio.gather(*(one() for _ in range(n)))


def audit_reads(audit_log: Path, api_path: str) -> int:
    count = 0
    for line in audit_log.read_text().splitlines():
        rec = json.loads(line)
        req = rec.get("request") or {}
        if (
            rec.get("type") == "request"
            and req.get("path") == api_path
            and (req.get("operation") == "read")
        ):
            count += 1
    return count


def bao_without_audit() -> OpenBaoServer:
    """A second dev server with no audit device: OpenBao's best case."""
    server = OpenBaoServer(
        root=short_tempdir("bao-noaudit"), bin=find_bao(), port=free_port(),
        root_token=f"root-{secrets.token_hex(16)}",
    )  # fmt: skip
    (server.root / "bao.hcl").write_text("# no audit device\n")
    server.start()
    return server


def prepare(bao: OpenBaoServer, password: str) -> tuple[hvac.Client, str]:
    """Seed ``secret/bench/app`` and return (root client, a token limited to the bench path)."""
    admin = hvac.Client(url=bao.addr, token=bao.root_token)
    admin.sys.create_or_update_policy(
        "bench", 'path "secret/data/bench/*" { capabilities = ["read"] }\n'
        'path "sys/internal/ui/mounts/*" { capabilities = ["read"] }'
    )  # fmt: skip
    admin.secrets.kv.v2.create_or_update_secret(
        path="bench/app", secret={"password": password, "user": "app"}
    )
    token = admin.auth.token.create(policies=["bench"], ttl="2h")["auth"]["client_token"]
    return admin, str(token)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (apt-get install -y wrk)")

    bao = OpenBaoServer.create()
    bare = bao_without_audit()
    root = Path(tempfile.mkdtemp(prefix="vs-bench-broker-", dir="/tmp"))
    factory = VaultsideServerFactory(root)
    try:
        password = secrets.token_urlsafe(24)
        admin, bao_token = prepare(bao, password)
        prepare(bare, password)
        token_file = root / "bao-token"
        token_file.write_text(bao_token)
        token_file.chmod(0o600)

        server = factory(
            VAULTSIDE_BROKERS__corp__ADDRESS=bao.addr,
            VAULTSIDE_BROKERS__corp__TOKEN_FILE=str(token_file),
            VAULTSIDE_BROKERS__corp__CACHE_TTL="3600",
            VAULTSIDE_SERVER__WORKERS=str(args.workers),
        )
        rules = [{"path": "broker/corp/secret/bench/*", "capabilities": ["read"]}]
        put = urllib_json(
            server.addr, "PUT", "/v1/sys/policies/bench", server.root_token, {"rules": rules}
        )
        assert put < 300, put
        vs_token = create_token(server.addr, server.root_token)

        vs_url = f"{server.addr}/v1/broker/corp/secret/bench/app"
        bao_url = f"{bao.addr}/v1/secret/data/bench/app"
        vs_header, bao_header = f"Authorization: Bearer {vs_token}", f"X-Vault-Token: {bao_token}"
        wrk(vs_url, vs_header, 2)  # warm the cache and both servers
        wrk(bao_url, bao_header, 2)
        bare_url = f"{bare.addr}/v1/secret/data/bench/app"
        # OpenBao's best case: no audit device and the root token (no policy evaluation).
        bare_header = f"X-Vault-Token: {bare.root_token}"
        wrk(bare_url, bare_header, 2)
        vs_runs, bao_runs, bare_runs = [], [], []
        for _ in range(args.rounds):
            vs_runs.append(wrk(vs_url, vs_header, args.duration))
            bao_runs.append(wrk(bao_url, bao_header, args.duration))
            bare_runs.append(wrk(bare_url, bare_header, args.duration))
        vs_rps = statistics.median(r for r, _ in vs_runs)
        bao_rps = statistics.median(r for r, _ in bao_runs)
        bare_rps = statistics.median(r for r, _ in bare_runs)

        cold = f"bench/cold-{secrets.token_hex(4)}"
        admin.secrets.kv.v2.create_or_update_secret(path=cold, secret={"k": secrets.token_hex(8)})
        statuses = asyncio.run(single_flight(server.addr, vs_token, cold, 100))
        upstream = audit_reads(bao.audit_log, f"secret/data/{cold}")

        print(f"wrk: {THREADS} threads, {CONNECTIONS} connections, {args.duration}s x "
              f"{args.rounds} interleaved rounds; vaultside workers={args.workers}")  # fmt: skip
        print(f"{'target':<36}{'req/s (median)':>14}  rounds req/s [p99]")
        rows = (
            ("vaultside /v1/broker (warm, audit)", vs_runs, vs_rps),
            ("OpenBao KV v2 (audit)", bao_runs, bao_rps),
            ("OpenBao KV v2 (no audit, root)", bare_runs, bare_rps),
        )
        for name, runs, rps in rows:
            detail = ", ".join(f"{r:.0f} [{p}]" for r, p in runs)
            print(f"{name:<36}{rps:>14.0f}  {detail}")
        print(f"ratio vaultside/OpenBao, both audited: {vs_rps / bao_rps:.2f}x (target >= 1.5x)")
        print(f"ratio vaultside/OpenBao best case (no audit, root): {vs_rps / bare_rps:.2f}x")
        ok = sum(1 for s in statuses if s == 200)
        print(f"single flight: 100 concurrent cold reads -> {ok} x 200, "
              f"OpenBao audit shows {upstream} read(s) of {cold} (target: exactly 1)")  # fmt: skip
    finally:
        factory.close()
        bao.close()
        bare.close()
        shutil.rmtree(root, ignore_errors=True)


def urllib_json(addr: str, method: str, path: str, token: str, body: object) -> int:
    import urllib.request

    req = urllib.request.Request(
        f"{addr}{path}", method=method, data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def create_token(addr: str, root_token: str) -> str:
    import urllib.request

    req = urllib.request.Request(
        f"{addr}/v1/auth/token/create", method="POST",
        data=json.dumps({"policies": ["bench"], "ttl": "2h"}).encode(),
        headers={"Authorization": f"Bearer {root_token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["auth"]["token"])


if __name__ == "__main__":
    main()
