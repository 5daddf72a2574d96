"""Findings 4 and 5 (issue 11): the auth-failure throttle, replayed against a real server.

4. Lockout: 30 parallel requests with bogus tokens from one address made every valid token
   from that address get 429 for 15 minutes (and, after 12 failures, wait 8 s).
5. Unlimited guessing: any success reset the failure count and parallel requests skipped the
   delay: 160 bad guesses were answered in 0.18 s with one low-privilege token mixed in.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest

from .flood import audit_records, bogus_token, low_privilege_token, parallel_get
from .flood import call as _call


async def test_bogus_tokens_from_one_address_do_not_lock_out_a_valid_token(
    vaultside_server,  # type: ignore[no-untyped-def]
) -> None:
    server = vaultside_server()
    valid = low_privilege_token(server.addr, server.root_token)
    url = f"{server.addr}/v1/secrets/app/db"

    async with asyncio.TaskGroup() as group:
        flood = group.create_task(parallel_get(url, [bogus_token() for _ in range(30)]))
        await asyncio.sleep(1.0)  # every bogus request has reached the server and failed

        started = time.monotonic()
        status, _ = await asyncio.to_thread(_call, server.addr, "GET", "/v1/secrets/app/db", valid)
        elapsed = time.monotonic() - started
    answers = flood.result()

    assert status == 404, f"valid token from the flooding address got {status}"
    assert elapsed < 0.5, f"valid token waited {elapsed:.2f} s behind 30 bogus tokens"
    assert all(a.status in (403, 429) for a in answers), [a.status for a in answers]
    # The root token (same address, loopback) is not slowed either.
    assert _call(server.addr, "GET", "/v1/auth/token/lookup-self", server.root_token)[0] == 200


async def test_parallel_guesses_mixed_with_a_valid_token_stay_rate_bounded(
    vaultside_server,  # type: ignore[no-untyped-def]
) -> None:
    server = vaultside_server()
    valid = low_privilege_token(server.addr, server.root_token)
    url = f"{server.addr}/v1/secrets/app/db"
    tokens: list[str | None] = [bogus_token() for _ in range(160)]
    tokens.insert(80, valid)  # a success in the middle must not reset the count

    answers = await parallel_get(url, tokens, timeout=60)

    mine = answers.pop(80)
    assert mine.status == 404, f"the valid low-privilege token got {mine.status}"
    assert mine.at < 1.5, f"the valid token was answered after {mine.at:.2f} s"
    assert all(a.status in (403, 429) for a in answers), sorted({a.status for a in answers})
    # Default: 10 free failures, then one answered guess per second per client.
    early = sum(1 for a in answers if a.at < 2.0)
    assert early <= 15, f"{early} of 160 parallel guesses were answered within 2 s"


async def test_clients_behind_a_trusted_proxy_have_their_own_budgets(
    vaultside_server,  # type: ignore[no-untyped-def]
) -> None:
    # Finding 4: "so does every client behind a proxy". The test client is the proxy.
    server = vaultside_server(VAULTSIDE_SERVER__TRUSTED_PROXIES='["127.0.0.1/32"]')
    valid = low_privilege_token(server.addr, server.root_token)
    url = f"{server.addr}/v1/secrets/app/db"
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    # The client gives up after 1 s; the server has charged all 30 by then (held, not lost).
    answers = await parallel_get(
        url, [bogus_token() for _ in range(30)], headers=attacker, timeout=1.0
    )
    assert all(a.status in (0, 403, 429) for a in answers)
    assert sum(a.status == 403 for a in answers) <= 11

    # Another client behind the same proxy: a bad token is answered at once (its own budget),
    # a valid one too.
    neighbour = {"X-Forwarded-For": "198.51.100.8"}
    (mine,) = await parallel_get(url, [bogus_token()], headers=neighbour)
    assert (mine.status, mine.at < 0.5) == (403, True), mine
    (ok,) = await parallel_get(url, [valid], headers=neighbour)
    assert (ok.status, ok.at < 0.5) == (404, True), ok
    # The attacker cannot mint budgets by rotating what it puts in front of the proxy's entry.
    spoofed = {"X-Forwarded-For": "203.0.113.1, 198.51.100.7"}
    (again,) = await parallel_get(url, [bogus_token()], headers=spoofed, timeout=2)
    assert again.status in (0, 429) or again.at > 1.0, again


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second local user")
async def test_unix_socket_users_have_their_own_budgets(
    vaultside_server,  # type: ignore[no-untyped-def]
) -> None:
    # Finding 4: "All unix-socket clients share one bucket".
    sock_dir = Path(tempfile.mkdtemp(prefix="vs-unix-"))
    sock_dir.chmod(0o755)
    path = sock_dir / "vs.sock"
    server = vaultside_server(VAULTSIDE_SERVER__UNIX_SOCKET=str(path))
    path.chmod(0o666)  # let the second user connect (the test's choice, not the default)
    nobody = 65534
    loop = (
        'for i in $(seq 30); do curl -s -o /dev/null --max-time 20 --unix-socket "$1"'
        " -H \"Authorization: Bearer $(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \\n')\""
        " http://vaultside/v1/secrets/app/db & done; wait"
    )
    other_user = subprocess.Popen(
        ["sh", "-c", loop, "sh", str(path)],
        preexec_fn=lambda: (os.setgid(nobody), os.setuid(nobody)),
    )
    await asyncio.sleep(1.5)  # the other user's 30 failures have been charged

    connector = aiohttp.UnixConnector(path=str(path))
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {bogus_token()}"}
        async with session.get("http://vaultside/v1/secrets/app/db", headers=headers) as resp:
            status = resp.status
        elapsed = time.monotonic() - started
        headers = {"Authorization": f"Bearer {server.root_token}"}
        async with session.get("http://vaultside/v1/auth/token/lookup-self", headers=headers) as r:
            assert r.status == 200
    other_user.wait(timeout=60)
    server.stop()
    shutil.rmtree(sock_dir, ignore_errors=True)
    records = audit_records(server.data_dir / "audit.log")
    assert any(r["client"] == f"unix:uid={nobody}" for r in records), "the other user got in"
    assert (status, elapsed < 0.5) == (403, True), (status, elapsed)
