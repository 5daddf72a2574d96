"""The broker's own Vault/OpenBao identity: token / AppRole / JWT login, renewal, re-login.

Concurrency: ``call`` runs an upstream operation with the current token. If it fails with 403
and the token turns out to be invalid (expired or revoked), exactly one re-login happens (the
others wait on it) and the operation is retried once, so requests arriving meanwhile do not
fail. A background task renews the token at ``renew_fraction`` of its TTL and logs in again
when renewal is refused or the token's max TTL is near.

Credentials are read from files at each login (so they can be rotated underneath) and are
never logged or put in exceptions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter, Gauge

from vaultside.broker.vault import AuthResult, UpstreamForbiddenError, VaultClient
from vaultside.clock import Clock
from vaultside.config.settings import BrokerSettings
from vaultside.errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamUnavailableError,
    VaultsideError,
)
from vaultside.lifecycle import first_of
from vaultside.retry import Backoff, jitter

log = logging.getLogger(__name__)

# "The broker cannot log in": 0 after a failed login until the next one succeeds (alert on it).
LOGIN_OK = Gauge(
    "vaultside_broker_login_ok",
    "1 if the broker's last login to Vault/OpenBao succeeded, 0 if it failed",
    ["broker"],
)
LOGIN_FAILURES = Counter(
    "vaultside_broker_login_failures_total",
    "Failed broker logins (token lookup, AppRole, JWT, unwrap)",
    ["broker", "method"],
)

T = TypeVar("T")

_DEFAULT_MOUNTS = {"token": "token", "approle": "approle", "jwt": "jwt"}


def _read_secret_file(path: Path | None, what: str) -> str:
    if path is None:
        raise InvalidRequestError(f"broker auth needs {what}")
    try:
        # SECURITY: the file's content is a credential; only its path appears in errors.
        return path.read_text().strip()
    except OSError as exc:
        raise UpstreamUnavailableError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc


class BrokerAuth:
    """Holds a valid token for one broker and keeps it that way."""

    def __init__(self, client: VaultClient, settings: BrokerSettings, clock: Clock) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._mount = settings.auth_mount or _DEFAULT_MOUNTS[settings.auth_method]
        self._lock = asyncio.Lock()
        self._generation = 0
        self._token: str | None = None
        self._expires_at: float | None = None  # monotonic; None = never expires
        self._login_ttl = 0.0
        self._renewable = False
        self._wake = asyncio.Event()
        self.logins = 0
        self.renewals = 0

    @property
    def logged_in(self) -> bool:
        """True once a token is held."""
        return self._token is not None

    def ttl_left(self) -> float | None:
        """Seconds before the held token expires (None: no expiry or no token)."""
        if self._expires_at is None:
            return None
        return self._expires_at - self._clock.monotonic()

    async def _login_once(self) -> AuthResult:
        s = self._settings
        if s.auth_method == "token":
            token = _read_secret_file(s.token_file, "token_file")
            try:
                result = await self._client.lookup_self(token)
            except UpstreamForbiddenError as exc:
                # SECURITY: the file is named, never its content.
                raise UpstreamError(
                    f"broker {self._client.name!r}: the token in token_file {str(s.token_file)!r}"
                    f" is refused by {s.address} (expired, revoked, or lost when a dev server"
                    " restarted; a valid token can at least read auth/token/lookup-self):"
                    " write a valid token to that file; it is read again on the next request"
                ) from exc
        elif s.auth_method == "approle":
            role_id = _read_secret_file(s.role_id_file, "role_id_file")
            secret_id = _read_secret_file(s.secret_id_file, "secret_id_file")
            if s.secret_id_wrapped:
                unwrapped = await self._client.unwrap(secret_id)
                secret_id = unwrapped.get("secret_id", "")
                if not secret_id:
                    raise UpstreamError("wrapped secret id did not contain a secret_id")
            result = await self._client.login_approle(self._mount, role_id, secret_id)
        else:
            if not s.jwt_role:
                raise InvalidRequestError("jwt auth needs jwt_role")
            jwt = _read_secret_file(s.jwt_file, "jwt_file")
            result = await self._client.login_jwt(self._mount, s.jwt_role, jwt)
        return result

    def _adopt(self, result: AuthResult) -> None:
        self._token = result.token
        self._client.set_token(result.token)
        self._login_ttl = result.lease_duration
        self._renewable = result.renewable
        now = self._clock.monotonic()
        self._expires_at = now + result.lease_duration if result.lease_duration > 0 else None
        self._generation += 1
        self._wake.set()

    async def login(self, *, seen_generation: int | None = None) -> None:
        """Log in (once, even if many callers ask at the same time)."""
        async with self._lock:
            if seen_generation is not None and self._generation != seen_generation:
                return  # someone else already logged in again while we waited
            try:
                result = await self._login_once()
            except VaultsideError:
                LOGIN_OK.labels(self._client.name).set(0)
                LOGIN_FAILURES.labels(self._client.name, self._settings.auth_method).inc()
                raise
            LOGIN_OK.labels(self._client.name).set(1)
            self.logins += 1
            self._adopt(result)
            log.info(
                "broker_login",
                extra={"broker": self._client.name, "method": self._settings.auth_method},
            )

    async def ensure(self) -> None:
        """Log in if no token is held yet."""
        if self._token is None:
            await self.login(seen_generation=self._generation)

    async def _token_invalid(self) -> bool:
        try:
            await self._client.lookup_self()
        except UpstreamForbiddenError:
            return True
        return False

    async def call(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` with a valid token; re-login and retry once if the token went bad."""
        await self.ensure()
        generation = self._generation
        try:
            return await op()
        except UpstreamForbiddenError:
            if generation == self._generation and not await self._token_invalid():
                raise  # a real policy denial: the token itself is fine
            await self.login(seen_generation=generation)
            return await op()

    async def renew_once(self) -> None:
        """Renew the token now; log in again if renewal is refused or nearly capped."""
        token = self._token
        if token is None:
            await self.login(seen_generation=self._generation)
            return
        generation = self._generation
        try:
            if not self._renewable:
                raise UpstreamForbiddenError("token is not renewable")
            result = await self._client.renew_self(token)
        except UpstreamForbiddenError:
            await self.login(seen_generation=generation)
            return
        self.renewals += 1
        capped = result.lease_duration < self._login_ttl * (1 - self._settings.renew_fraction)
        if capped:
            # The token is close to its max TTL: a fresh login beats a dying token.
            await self.login(seen_generation=generation)
            return
        async with self._lock:
            if generation == self._generation:
                login_ttl = self._login_ttl
                self._adopt(AuthResult(token, result.accessor, result.lease_duration, True))
                self._login_ttl = login_ttl

    async def _sleep_or_wake(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True if a new token arrived first."""
        return await first_of(self._wake.wait(), self._clock.sleep(max(0.0, delay))) == 0

    async def run(self) -> None:
        """Background loop: log in, renew at ``renew_fraction`` of the TTL, re-login, forever."""
        # Full-jitter backoff and jittered renewals (vaultside.retry): servers that share a
        # broker and lost it together do not log in again in lockstep.
        backoff = Backoff(base=1.0, cap=30.0)
        while True:
            try:
                if self._token is None:
                    await self.login(seen_generation=self._generation)
                left = self.ttl_left()
                self._wake.clear()
                if left is None:
                    await self._wake.wait()  # a non-expiring token: nothing to do until re-login
                    continue
                # Never spin: wait at least half a second (or until expiry if sooner).
                delay = max(min(0.5, left), jitter(left * self._settings.renew_fraction, 0.1))
                if await self._sleep_or_wake(delay):
                    continue  # a re-login elsewhere brought a new token: reschedule for it
                await self.renew_once()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except VaultsideError as exc:
                left = self.ttl_left()
                delay = backoff.next()
                if left and left > 0:
                    delay = min(delay, max(0.5, left / 4))
                log.warning(
                    "broker_token_renewal_failed",
                    extra={
                        "broker": self._client.name,
                        "error": exc.message,
                        "retry_in": round(delay, 3),
                    },
                )
                await self._clock.sleep(delay)
