"""The sidecar's JWT session on the fake clock: login, renew, re-login on rotation/max TTL."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vaultside.client import TokenAuth
from vaultside.clock import FakeClock
from vaultside.errors import InvalidRequestError, PermissionDeniedError
from vaultside.inject.sidecar_auth import JwtSession


class FakeServer:
    """Issues tokens for any JWT it has been told about; renewals extend up to a max."""

    def __init__(self, clock: FakeClock, ttl: float = 60.0, max_ttl: float = 1000.0) -> None:
        self.clock = clock
        self.ttl, self.max_ttl = ttl, max_ttl
        self.jwts_seen: list[str] = []
        self.token = ""
        self.refuse_login = False
        self.refuse_renew = False
        self.revoked: list[str] = []
        self._issued = 0.0

    def use_token(self, token: str) -> None:
        self.token = token

    async def jwt_login(self, role: str, jwt: str) -> TokenAuth:
        if self.refuse_login:
            raise PermissionDeniedError("JWT login refused: token expired")
        self.jwts_seen.append(jwt)
        self._issued = self.clock.now()
        expire = datetime.fromtimestamp(self._issued + self.ttl, UTC).isoformat()
        return TokenAuth(f"vs.{len(self.jwts_seen)}", "acc", ("p",), expire, self.ttl, True)

    async def revoke_self(self) -> None:
        self.revoked.append(self.token)

    async def renew_self(self, increment: str | float | None = None) -> dict[str, Any]:
        if self.refuse_renew:
            raise PermissionDeniedError()
        expire = min(self.clock.now() + self.ttl, self._issued + self.max_ttl)
        return {"expire_time": datetime.fromtimestamp(expire, UTC).isoformat(), "ttl": self.ttl}


def write_jwt(path: Path) -> str:
    jwt = "eyJ." + secrets.token_urlsafe(24) + ".sig"
    tmp = path.with_name(".tmp")
    tmp.write_text(jwt)
    os.replace(tmp, path)  # as the kubelet swaps the projected file
    return jwt


async def test_logs_in_and_again_when_the_file_rotates(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    first = write_jwt(path)
    server = FakeServer(clock)
    session = JwtSession(server, "web", path, clock=clock)
    await session.start()
    assert server.jwts_seen == [first] and server.token == "vs.1"
    await clock.advance(1)
    await session.refresh()
    assert session.logins == 1  # unchanged file: no login
    second = write_jwt(path)
    await session.refresh()
    assert session.logins == 1  # checked at most every check_interval
    await clock.advance(1)
    await session.refresh()
    assert server.jwts_seen == [first, second] and server.token == "vs.2"
    await session.close()
    assert server.revoked == ["vs.2"]  # the token dies with the sidecar


async def test_renews_at_two_thirds_and_logs_in_at_max_ttl(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "token"
    write_jwt(path)
    server = FakeServer(clock, ttl=60, max_ttl=100)
    session = JwtSession(server, "web", path, clock=clock)
    await session.start()
    await clock.advance(39)
    await session.refresh()
    assert session.renewals == 0
    await clock.advance(1)
    await session.refresh()
    assert session.renewals == 1 and session.logins == 1  # expires at 100: 60 s left
    await clock.advance(40)
    await session.refresh()  # renewal capped at 100: 20 s left < next renewal → log in
    assert session.logins == 2 and server.token == "vs.2"


async def test_refused_token_and_failed_renewal_log_in_again(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "token"
    write_jwt(path)
    server = FakeServer(clock)
    session = JwtSession(server, "web", path, clock=clock)
    await session.start()
    session.expired()
    await session.refresh()
    assert session.logins == 2
    server.refuse_renew = True
    await clock.advance(40)
    await session.refresh()
    assert session.logins == 3


async def test_a_failed_relogin_keeps_the_token_and_retries(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    write_jwt(path)
    server = FakeServer(clock)
    session = JwtSession(server, "web", path, clock=clock)
    await session.start()
    server.refuse_login = True
    new = write_jwt(path)
    await clock.advance(1)
    await session.refresh()  # never raises
    assert server.token == "vs.1"
    server.refuse_login = False
    await clock.advance(1)
    await session.refresh()
    assert server.token == "vs.2" and server.jwts_seen[-1] == new
    assert new not in caplog.text


async def test_first_login_failure_is_raised(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    write_jwt(path)
    server = FakeServer(clock)
    server.refuse_login = True
    with pytest.raises(PermissionDeniedError):
        await JwtSession(server, "web", path, clock=clock).start()
    with pytest.raises(InvalidRequestError, match="cannot read the JWT file"):
        await JwtSession(server, "web", tmp_path / "missing", clock=clock).start()
