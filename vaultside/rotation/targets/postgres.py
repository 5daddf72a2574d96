"""Target ``postgres``: a role's password, changed over an admin connection (asyncpg).

``ALTER ROLE ... PASSWORD`` cannot take bind parameters, so the new password is turned into
a SCRAM-SHA-256 verifier here in Python and only the verifier goes over the wire: the
plaintext never reaches the server, its log or ``pg_stat_statements``.

Strategies:

- ``single``: one role; ``set`` changes its password, so the old password stops working at
  once (there is no grace on the database side). ``rollback`` restores the previous verifier
  (read from ``pg_authid`` when the admin may, else derived from the current value).
- ``alternating``: two roles; each rotation sets a new password on the role that is *not*
  current and flips ``username`` to it. The previous role keeps working until the next flip;
  with ``grace`` > 0 it also gets ``VALID UNTIL now + grace``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import asyncpg

from vaultside.broker.base import SecretSource
from vaultside.clock import Clock
from vaultside.errors import InvalidRequestError, UpstreamError, UpstreamUnavailableError
from vaultside.refs import parse_ref
from vaultside.rotation.base import RotationContext
from vaultside.rotation.generators import value_field
from vaultside.rotation.policy import PostgresTargetSpec

SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def quote_ident(name: str) -> str:
    """A safely quoted SQL identifier."""
    if "\x00" in name:
        raise InvalidRequestError("role name contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A safely quoted SQL string literal (standard_conforming_strings on)."""
    if "\x00" in text:
        raise InvalidRequestError("literal contains a NUL byte")
    return "'" + text.replace("'", "''") + "'"


class PostgresTarget:
    """Changes and tests a PostgreSQL role's password."""

    kind = "postgres"

    def __init__(
        self, spec: PostgresTargetSpec, sources: dict[str, SecretSource], clock: Clock
    ) -> None:
        self.spec = spec
        self._sources = sources
        self._clock = clock

    async def _admin_dsn(self) -> str:
        ref = parse_ref(self.spec.admin_dsn_ref)
        source = self._sources.get(ref.scheme)
        if source is None:
            raise InvalidRequestError(f"no source for {ref.scheme!r} references")
        return (await source.resolve(ref)).value

    async def _connect(self, **kw: str) -> asyncpg.Connection:
        dsn = await self._admin_dsn()
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                dsn, timeout=self.spec.connect_timeout, **kw
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamUnavailableError(f"postgres unreachable: {type(exc).__name__}") from exc
        except asyncpg.PostgresError as exc:
            # SECURITY: asyncpg messages name the role, never the password.
            raise UpstreamError(f"postgres refused the connection: {exc.sqlstate}") from exc
        return conn

    async def _alter(self, role: str, verifier: str | None, valid_until: str | None) -> None:
        sql = f"ALTER ROLE {quote_ident(role)}"
        if verifier is not None:
            sql += f" PASSWORD {quote_literal(verifier)}"
        if valid_until is not None:
            sql += f" VALID UNTIL {quote_literal(valid_until)}"
        conn = await self._connect()
        try:
            await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            raise UpstreamError(f"ALTER ROLE {role} failed: {exc.sqlstate}") from None
        finally:
            await conn.close()

    async def _stored_verifier(self, role: str) -> str | None:
        conn = await self._connect()
        try:
            value = await conn.fetchval(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role
            )
        except asyncpg.PostgresError:
            return None  # not a superuser: fall back to the current value
        finally:
            await conn.close()
        return str(value) if value else None

    def _role_to_set(self, ctx: RotationContext) -> str:
        return ctx.state["role"]

    async def create_pending(self, ctx: RotationContext) -> None:
        """Choose the role to change and remember its current verifier for rollback."""
        roles = self.spec.roles
        if self.spec.strategy == "alternating":
            current_user = (ctx.current or {}).get(self.spec.username_field)
            role = roles[1] if current_user == roles[0] else roles[0]
        else:
            role = roles[0]
        ctx.state["role"] = role
        ctx.pending[self.spec.username_field] = role
        verifier = await self._stored_verifier(role)
        if verifier is not None:
            ctx.state["previous_verifier"] = verifier

    async def set(self, ctx: RotationContext) -> None:
        """Give the role the new password (as a SCRAM verifier) and no expiry."""
        password = ctx.pending[value_field(ctx.policy.generator)]
        await self._alter(self._role_to_set(ctx), scram_verifier(password), "infinity")

    async def test(self, ctx: RotationContext) -> None:
        """Log in as the role with the new password and run ``SELECT 1``."""
        password = ctx.pending[value_field(ctx.policy.generator)]
        conn = await self._connect(user=self._role_to_set(ctx), password=password)
        try:
            if await conn.fetchval("SELECT 1") != 1:
                raise UpstreamError("test query returned an unexpected result")
        finally:
            await conn.close()

    async def finish(self, ctx: RotationContext) -> None:
        """Alternating with grace: the previous role expires ``grace`` seconds from now."""
        if self.spec.strategy != "alternating" or ctx.policy.grace <= 0:
            return
        previous = (ctx.current or {}).get(self.spec.username_field)
        if previous not in self.spec.roles or previous == self._role_to_set(ctx):
            return
        until = datetime.fromtimestamp(self._clock.now() + ctx.policy.grace, UTC).isoformat()
        await self._alter(previous, None, until)

    async def rollback(self, ctx: RotationContext) -> None:
        """Restore the changed role's previous password so the current value works again."""
        role = ctx.state.get("role")
        if role is None:
            return  # create_pending never ran: nothing was changed
        verifier = ctx.state.get("previous_verifier")
        if verifier is None and ctx.current is not None:
            old = ctx.current.get(value_field(ctx.policy.generator))
            if old is not None and ctx.current.get(self.spec.username_field, role) == role:
                verifier = scram_verifier(old)
        if verifier is not None:
            await self._alter(role, verifier, None)
