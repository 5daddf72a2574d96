"""How the sidecar stays logged in with a projected ServiceAccount token (``--auth jwt``).

``JwtSession`` logs in (``POST /v1/auth/jwt/login``) with the JWT in ``jwt_file`` and gives
the resulting token to the client. ``refresh()``, called by the sidecar's loop, checks at
most every ``check_interval`` seconds and

- logs in again when the file changed (the kubelet rotates the projected token by swapping
  a symlink: a new inode, mtime or content);
- renews the vaultside token once ``renew_fraction`` of its TTL has passed, and logs in again
  instead when a renewal fails or would not last until the next renewal (max TTL reached);
- logs in again after ``expired()`` (the server refused the token).

A failed re-login keeps the current token (it may still be valid) and is retried at the next
check; only the first login's failure is raised (``VaultsideError``). ``close()`` revokes the
token when the sidecar exits. The JWT is read fresh for every login, kept in no attribute,
and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from vaultside.client import TokenAuth
from vaultside.clock import Clock
from vaultside.errors import InvalidRequestError, VaultsideError

log = logging.getLogger(__name__)

DEFAULT_JWT_FILE = Path("/var/run/secrets/tokens/vaultside")
_MAX_JWT = 16 * 1024


class LoginClient(Protocol):
    """The slice of ``VaultsideClient`` a session needs."""

    def use_token(self, token: str) -> None:
        """Send ``token`` from now on."""
        ...

    async def jwt_login(self, role: str, jwt: str) -> TokenAuth:
        """Exchange a JWT for a token."""
        ...

    async def renew_self(self, increment: str | float | None = None) -> dict[str, Any]:
        """Renew the current token."""
        ...

    async def revoke_self(self) -> None:
        """Revoke the current token."""
        ...


def _read_jwt(path: Path) -> tuple[str, tuple[int, int, int, bytes]]:
    """The JWT and a stamp of the file (inode, mtime, size, content digest)."""
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        raw = f.read(_MAX_JWT + 1)
    if len(raw) > _MAX_JWT or not raw.strip():
        raise InvalidRequestError(f"JWT file {path} is empty or larger than {_MAX_JWT} bytes")
    digest = hashlib.sha256(raw).digest()
    return raw.decode("ascii", "replace").strip(), (st.st_ino, st.st_mtime_ns, st.st_size, digest)


def _stat(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


class JwtSession:
    """Keeps ``client`` logged in with the JWT in ``jwt_file``; see the module docstring."""

    def __init__(
        self,
        client: LoginClient,
        role: str,
        jwt_file: Path,
        *,
        clock: Clock,
        check_interval: float = 1.0,
        renew_fraction: float = 2 / 3,
    ) -> None:
        self.client = client
        self.role = role
        self.jwt_file = jwt_file
        self.clock = clock
        self.check_interval = check_interval
        self.renew_fraction = renew_fraction
        self.logins = 0
        self.renewals = 0
        self._stamp: tuple[int, int, int, bytes] | None = None
        self._ttl: float | None = None
        self._issued_at = 0.0  # monotonic time of the last login or renewal
        self._last_check: float | None = None
        self._stale = False

    async def start(self) -> None:
        """The first login; raises ``VaultsideError`` if it fails (``InvalidRequestError``
        when the JWT file cannot be read)."""
        try:
            await self._login()
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read the JWT file {self.jwt_file}: {exc.strerror or type(exc).__name__}"
            ) from None

    async def close(self) -> None:
        """Revoke the session's token (best-effort): it is useless once the sidecar exits."""
        if self.logins == 0:
            return
        try:
            await self.client.revoke_self()
        except VaultsideError as exc:
            log.warning("revoking the sidecar token failed", extra={"error": exc.message})

    def expired(self) -> None:
        """The server refused the token: log in again at the next ``refresh``."""
        self._stale = True
        self._last_check = None

    async def refresh(self) -> None:
        """Log in again or renew if due (cheap when nothing is due); never raises."""
        now = self.clock.monotonic()
        if self._last_check is not None and now - self._last_check < self.check_interval:
            return
        self._last_check = now
        try:
            if self._stale or await self._file_changed():
                await self._login()
            elif self._renew_due(now):
                await self._renew()
        except VaultsideError as exc:
            log.warning("sidecar auth refresh failed", extra={"error": exc.message})
        except OSError as exc:
            log.warning("JWT file unreadable", extra={"error_type": type(exc).__name__})

    async def _file_changed(self) -> bool:
        if self._stamp is None:
            return True
        if await asyncio.to_thread(_stat, self.jwt_file) == self._stamp[:3]:
            return False
        _, stamp = await asyncio.to_thread(_read_jwt, self.jwt_file)
        if stamp[3] == self._stamp[3]:
            self._stamp = stamp  # touched or re-linked, same token
            return False
        return True

    def _renew_due(self, now: float) -> bool:
        return self._ttl is not None and now - self._issued_at >= self._ttl * self.renew_fraction

    async def _login(self) -> None:
        jwt, stamp = await asyncio.to_thread(_read_jwt, self.jwt_file)
        auth = await self.client.jwt_login(self.role, jwt)
        del jwt
        self.client.use_token(auth.token)
        self._stamp, self._ttl, self._stale = stamp, auth.ttl, False
        self._issued_at = self.clock.monotonic()
        self.logins += 1
        log.info("logged in with the ServiceAccount token", extra={"role": self.role,
                 "accessor": auth.accessor, "ttl": auth.ttl})  # fmt: skip

    async def _renew(self) -> None:
        try:
            renewed = await self.client.renew_self()
        except VaultsideError as exc:
            log.info("renewal failed; logging in again", extra={"error": exc.message})
            await self._login()
            return
        remaining = _remaining(renewed.get("expire_time"), self.clock.now())
        # It would expire before the next renewal is due: it is at its max TTL.
        if self._ttl and (remaining is None or remaining < self._ttl * self.renew_fraction):
            log.info("token at its max TTL; logging in again")
            await self._login()
            return
        self._issued_at = self.clock.monotonic()
        self.renewals += 1


def _remaining(expire_time: object, now: float) -> float | None:
    if not isinstance(expire_time, str):
        return None
    try:
        return datetime.fromisoformat(expire_time.replace("Z", "+00:00")).timestamp() - now
    except ValueError:
        return None
