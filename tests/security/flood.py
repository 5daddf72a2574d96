"""Helpers for the security tests: parallel HTTP against a real server, audit file reading."""

from __future__ import annotations

import asyncio
import secrets
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.integration.services.wire import audit_file_records as audit_records
from tests.integration.services.wire import request

__all__ = [
    "audit_records",
    "bogus_token",
    "call",
    "low_privilege_token",
    "parallel_get",
    "vaultside",
]

_ALPHABET = string.ascii_letters + string.digits


def bogus_token() -> str:
    """A well-formed token that no server issued (generated at test time)."""
    return "vs." + "".join(secrets.choice(_ALPHABET) for _ in range(43))


@dataclass(frozen=True)
class Answer:
    """One response: status and seconds after the batch started."""

    status: int
    at: float


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    token: str | None,
    start: float,
    timeout: float,
    extra: dict[str, str],
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers |= extra
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            await resp.read()
            return Answer(resp.status, time.monotonic() - start)
    except (TimeoutError, aiohttp.ClientError):
        return Answer(0, time.monotonic() - start)


async def parallel_get(
    url: str,
    tokens: list[str | None],
    *,
    timeout: float = 30.0,
    limit: int = 0,
    headers: dict[str, str] | None = None,
) -> list[Answer]:
    """GET ``url`` once per entry of ``tokens``, all at once; answers in the same order."""
    connector = aiohttp.TCPConnector(limit=limit, force_close=True)
    extra = headers or {}
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        return list(
            await asyncio.gather(*(_one(session, url, t, start, timeout, extra) for t in tokens))
        )


def call(addr: str, method: str, path: str, token: str, body: object = None) -> tuple[int, Any]:
    """One request with ``token``; (status, JSON body or None)."""
    reply = request(addr, method, path, token=token, body=body, timeout=30)
    return reply.status, reply.json_or(None)


def low_privilege_token(addr: str, root: str) -> str:
    """A token whose only policy reads ``secrets/app/*`` (plus ``default``)."""
    rules = {"rules": [{"path": "secrets/app/*", "capabilities": ["read"]}]}
    assert call(addr, "PUT", "/v1/sys/policies/app-read", root, rules)[0] in (200, 204)
    status, body = call(
        addr, "POST", "/v1/auth/token/create", root, {"policies": ["app-read"], "ttl": 600}
    )
    assert status == 200, body
    return str(body["auth"]["token"])


def vaultside(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI (``python -m vaultside ...``)."""
    return subprocess.run(
        [sys.executable, "-m", "vaultside", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
