"""BrokerAuth on a fake clock against a fake Vault token service (no network)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from pathlib import Path

import pytest

from vaultside.broker.auth import BrokerAuth
from vaultside.broker.vault import AuthResult, UpstreamForbiddenError
from vaultside.clock import FakeClock
from vaultside.config.settings import BrokerSettings
from vaultside.errors import InvalidRequestError, UpstreamUnavailableError


class FakeTokenVault:
    """Issues tokens with a TTL and a max TTL; renew, lookup, revoke; counts logins."""

    name = "fake"

    def __init__(self, clock: FakeClock, ttl: float = 30, max_ttl: float = 120) -> None:
        self.clock, self.ttl, self.max_ttl = clock, ttl, max_ttl
        self.tokens: dict[str, tuple[float, float]] = {}  # token -> (expires, max_expires)
        self.current: str | None = None
        self.logins = 0
        self.renewals = 0
        self.reads = 0

    def set_token(self, token: str | None) -> None:
        self.current = token

    def _valid(self, token: str | None) -> bool:
        return token in self.tokens and self.tokens[token][0] > self.clock.monotonic()  # type: ignore[index]

    async def login_approle(self, mount: str, role_id: str, secret_id: str) -> AuthResult:
        await asyncio.sleep(0)
        self.logins += 1
        token = secrets.token_hex(8)
        now = self.clock.monotonic()
        self.tokens[token] = (now + self.ttl, now + self.max_ttl)
        return AuthResult(token, "acc", self.ttl, True)

    async def lookup_self(self, token: str | None = None) -> AuthResult:
        token = token if token is not None else self.current
        if not self._valid(token):
            raise UpstreamForbiddenError("permission denied")
        assert token is not None
        return AuthResult(token, "acc", self.tokens[token][0] - self.clock.monotonic(), True)

    async def renew_self(self, token: str) -> AuthResult:
        if not self._valid(token):
            raise UpstreamForbiddenError("permission denied")
        self.renewals += 1
        now = self.clock.monotonic()
        _, max_at = self.tokens[token]
        granted = min(self.ttl, max_at - now)
        self.tokens[token] = (now + granted, max_at)
        return AuthResult(token, "acc", granted, True)

    async def read(self, allowed: bool = True) -> str:
        await asyncio.sleep(0)
        if not self._valid(self.current):
            raise UpstreamForbiddenError("permission denied")
        if not allowed:
            raise UpstreamForbiddenError("permission denied")
        self.reads += 1
        return "ok"


def approle_settings(tmp_path: Path) -> BrokerSettings:
    (tmp_path / "role").write_text("role-id")
    (tmp_path / "secret").write_text("secret-id")
    return BrokerSettings(
        address="http://unused", auth_method="approle",
        role_id_file=tmp_path / "role", secret_id_file=tmp_path / "secret",
    )  # fmt: skip


async def test_relogin_after_revocation_is_single_flight(clock: FakeClock, tmp_path: Path) -> None:
    vault = FakeTokenVault(clock)
    auth = BrokerAuth(vault, approle_settings(tmp_path), clock)  # type: ignore[arg-type]
    assert await auth.call(vault.read) == "ok"
    vault.tokens.clear()  # every token revoked
    results = await asyncio.gather(*(auth.call(vault.read) for _ in range(30)))
    assert results == ["ok"] * 30
    assert vault.logins == 2


async def test_policy_denial_raises_without_relogin(clock: FakeClock, tmp_path: Path) -> None:
    vault = FakeTokenVault(clock)
    auth = BrokerAuth(vault, approle_settings(tmp_path), clock)  # type: ignore[arg-type]
    with pytest.raises(UpstreamForbiddenError):
        await auth.call(lambda: vault.read(allowed=False))
    assert vault.logins == 1


async def test_renews_at_two_thirds_then_relogs_near_max_ttl(
    clock: FakeClock, tmp_path: Path
) -> None:
    vault = FakeTokenVault(clock, ttl=30, max_ttl=100)
    auth = BrokerAuth(vault, approle_settings(tmp_path), clock)  # type: ignore[arg-type]
    task = asyncio.create_task(auth.run())
    await asyncio.sleep(0)
    for _ in range(60):  # 300 s in 5 s steps: the token must never lapse
        await clock.advance(5)
        assert vault._valid(vault.current)
    assert vault.renewals >= 3 and vault.logins >= 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_missing_credential_file_is_reported_by_path(
    clock: FakeClock, tmp_path: Path
) -> None:
    settings = BrokerSettings(address="http://unused", auth_method="jwt", jwt_file=None)
    auth = BrokerAuth(FakeTokenVault(clock), settings, clock)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="jwt_role"):
        await auth.login()


async def test_relogins_after_an_outage_are_not_in_lockstep(
    clock: FakeClock, tmp_path: Path
) -> None:
    # Servers sharing a broker that went away together must not all retry at the same instants.
    attempts: list[list[float]] = []
    tasks = []
    for _ in range(6):
        vault = FakeTokenVault(clock)
        seen: list[float] = []
        attempts.append(seen)

        async def down(mount: str, role_id: str, secret_id: str, seen: list[float] = seen) -> None:
            seen.append(clock.monotonic())
            raise UpstreamUnavailableError("connection refused")

        vault.login_approle = down  # type: ignore[method-assign, assignment]
        auth = BrokerAuth(vault, approle_settings(tmp_path), clock)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(auth.run()))
    await asyncio.sleep(0)
    for _ in range(120):
        await clock.advance(0.5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(len(seen) >= 3 for seen in attempts)
    second_tries = {round(seen[1], 3) for seen in attempts}
    assert len(second_tries) > 1, attempts  # spread by full jitter
    assert all(b - a <= 30 for seen in attempts for a, b in itertools.pairwise(seen))
