"""JWT (Kubernetes ServiceAccount token) logins: vaultside vs OpenBao's jwt auth, side by side.

Both servers get the same RS256 key (generated here), the same Kubernetes-shaped token
(tests/k8s_tokens.py), a role bound to that ServiceAccount with one policy and a 10 min TTL,
and a file audit sink. ``--concurrency`` clients log in back to back for ``--duration``
seconds per round; rounds are interleaved (order reversed on odd rounds) and the table shows
the median of the rounds, then the ratio. Every login issues and stores a new token on both.

    .venv/bin/python bench/bench_jwt_login.py                  # 3 rounds of 5 s, 8 clients
    .venv/bin/python bench/bench_jwt_login.py --duration 3 --rounds 2 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_kv import Service, check, http, start_openbao  # noqa: E402

from tests.integration.services.process import remove_tree, short_tempdir  # noqa: E402
from tests.integration.services.vaultside_server import VaultsideServerFactory  # noqa: E402
from tests.k8s_tokens import ISSUER, Minter, jwks, rsa_key  # noqa: E402

SUB = "system:serviceaccount:apps:web"


@dataclass
class Target:
    """A server that takes ``{role, jwt}`` at ``login_url``."""

    name: str
    login_url: str


@dataclass
class Run:
    logins: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.logins / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def setup_openbao(svc: Service, pem: str) -> None:
    root = svc.root
    hdr = "X-Vault-Token"
    check(http("POST", f"{svc.addr}/v1/sys/auth/jwt", root, {"type": "jwt"}, hdr), "enable jwt")
    config = {"jwt_validation_pubkeys": [pem], "bound_issuer": ISSUER}
    check(http("POST", f"{svc.addr}/v1/auth/jwt/config", root, config, hdr), "jwt config")
    role = {
        "role_type": "jwt",
        "bound_audiences": ["vaultside"],
        "user_claim": "sub",
        "bound_subject": SUB,
        "bound_claims": {"/kubernetes.io/namespace": "apps"},
        "token_policies": ["bench"],
        "token_ttl": "10m",
    }
    check(http("POST", f"{svc.addr}/v1/auth/jwt/role/web", root, role, hdr), "jwt role")


async def hammer(target: Target, jwt: str, duration: float, concurrency: int) -> Run:
    body = json.dumps({"role": "web", "jwt": jwt}).encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    headers = {"Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with session.post(target.login_url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return Run(len(latencies), errors, time.perf_counter() - started, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    key = rsa_key()
    jwt = Minter(key).mint("apps", "web")
    pem = (
        key.private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    work = short_tempdir("benchjwt")
    factory = VaultsideServerFactory(work / "vs")
    bao: Service | None = None
    try:
        jwks_file = work / "jwks.json"
        jwks_file.write_text(json.dumps(jwks(key)))
        vs = factory(
            VAULTSIDE_AUTH__JWT__ISSUER=ISSUER,
            VAULTSIDE_AUTH__JWT__JWKS_FILE=str(jwks_file),
            VAULTSIDE_LOG_LEVEL="WARNING",
        )
        rules = {"rules": [{"path": "secrets/bench/**", "capabilities": ["read"]}]}
        check(http("PUT", f"{vs.addr}/v1/sys/policies/bench", vs.root_token, rules), "policy")
        role = {
            "policies": ["bench"],
            "ttl": "10m",
            "bound_service_account_names": ["web"],
            "bound_service_account_namespaces": ["apps"],
        }
        check(http("PUT", f"{vs.addr}/v1/auth/jwt/roles/web", vs.root_token, role), "role")
        bao = start_openbao(work)
        setup_openbao(bao, pem)
        targets = [
            Target("vaultside", f"{vs.addr}/v1/auth/jwt/login"),
            Target("openbao", f"{bao.addr}/v1/auth/jwt/login"),
        ]
        for t in targets:  # warm-up, and a check that both accept the token
            warm = asyncio.run(hammer(t, jwt, 1.0, 2))
            assert warm.logins > 0 and warm.errors == 0, (t.name, warm.errors)
        results: dict[str, list[Run]] = {t.name: [] for t in targets}
        for r in range(args.rounds):
            for t in targets if r % 2 == 0 else list(reversed(targets)):
                results[t.name].append(asyncio.run(hammer(t, jwt, args.duration, args.concurrency)))
        one, five, fifteen = os.getloadavg()
        shape = f"{args.rounds} rounds x {args.duration:g} s, {args.concurrency} clients"
        print(f"load average {one:.2f} {five:.2f} {fifteen:.2f}; {shape}")
        print(f"{'target':<10} {'logins/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        med: dict[str, float] = {}
        for name, runs in results.items():
            med[name] = statistics.median(run.rate for run in runs)
            p50 = statistics.median(run.pct(0.5) for run in runs)
            p99 = statistics.median(run.pct(0.99) for run in runs)
            errs = sum(run.errors for run in runs)
            print(f"{name:<10} {med[name]:>9.0f} {p50:>8.1f} {p99:>8.1f} {errs:>7}")
        ratios = [
            a.rate / b.rate for a, b in zip(results["vaultside"], results["openbao"], strict=True)
        ]
        print(f"vaultside / openbao logins/s: {statistics.median(ratios):.2f} "
              f"(per round: {', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
    finally:
        if bao is not None:
            bao.stop()
        factory.close()
        remove_tree(work)


if __name__ == "__main__":
    main()
