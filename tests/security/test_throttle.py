"""Findings 4 and 5 (issue 11): the auth-failure throttle, replayed against a real server.

4. Lockout: 30 parallel requests with bogus tokens from one address made every valid token
   from that address get 429 for 15 minutes (and, after 12 failures, wait 8 s).
5. Unlimited guessing: any success reset the failure count and parallel requests skipped the
   delay: 160 bad guesses were answered in 0.18 s with one low-privilege token mixed in.
"""

from __future__ import annotations

import asyncio
import time

from .flood import bogus_token, low_privilege_token, parallel_get
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
