"""PostgreSQL backend (asyncpg, pooled), for several vaultside replicas sharing one database.

Every check is done by the database, not by a read-then-write in Python:

- revisions come from one sequence (``nextval``), so they never repeat for a key even after
  a delete (no ABA on compare-and-set);
- ``expect_revision=N`` is ``UPDATE ... WHERE key = $1 AND revision = N`` and ``0`` is
  ``INSERT ... ON CONFLICT DO NOTHING``; under READ COMMITTED a concurrent writer blocks on
  the row and then re-checks the predicate against the committed row, so exactly one wins;
- a batch is one transaction: the first failed check raises and rolls back everything;
- a lease is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE holder = me OR expired`` row.
  Expiry uses the injected ``Clock`` (replicas need synchronised wall clocks, as with NTP).

Keys are ``text COLLATE "C"``: byte order of UTF-8 is code-point order, as the seam requires.

Reconnection: asyncpg's pool replaces connections that the server closed, so after a
PostgreSQL restart requests fail with ``UpstreamUnavailableError`` while it is down and work
again once it is back, without restarting vaultside. Reads are retried once on a dropped
connection; writes are not (a lost connection after COMMIT cannot be told from one before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from vaultside.clock import Clock, SystemClock
from vaultside.errors import (
    ConflictError,
    InvalidRequestError,
    UpstreamError,
    UpstreamUnavailableError,
    VaultsideError,
)
from vaultside.storage.base import Delete, Op, Put, Record
from vaultside.storage.schema import pending_migrations
from vaultside.storage.sqlite import prefix_end

T = TypeVar("T")

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE SEQUENCE vaultside_revision AS bigint",
        'CREATE TABLE vaultside_kv (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL,'
        " revision bigint NOT NULL)",
        'CREATE TABLE vaultside_leases (name text COLLATE "C" PRIMARY KEY,'
        " holder text NOT NULL, expires double precision NOT NULL)",
    ),
    (
        # Cross-server cache invalidation (storage/notify.py): committed changes to tokens,
        # policies and the keyring are announced on a channel; other keys cost nothing more.
        "CREATE FUNCTION vaultside_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE k text := CASE WHEN TG_OP = 'DELETE' THEN OLD.key ELSE NEW.key END;"
        " BEGIN IF left(k, 13) = 'logical/auth/' OR k = 'core/keyring' THEN"
        " PERFORM pg_notify('vaultside_changes', k); END IF; RETURN NULL; END $$",
        "CREATE TRIGGER vaultside_kv_changes AFTER INSERT OR UPDATE OR DELETE ON vaultside_kv"
        " FOR EACH ROW EXECUTE FUNCTION vaultside_notify_change()",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
# Serialises schema migration between replicas starting at the same time.
_MIGRATION_LOCK_ID = 0x7661_756C_7473_6964  # "vaultsid"
_DEADLOCK_RETRIES = 3

_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
# A connection the server dropped (restart, failover): asyncpg may notice only mid-query, and
# then sometimes reports a protocol-state error instead of a connection error.
_DROPPED = (
    ConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
# asyncpg's client-side DataError (bad argument) is both an InterfaceError and a ValueError.
_INVALID = (UnicodeError, ValueError, TypeError, OverflowError, asyncpg.exceptions.DataError)

_UPSERT = (
    "INSERT INTO vaultside_kv (key, value, revision) VALUES ($1, $2, nextval('vaultside_revision'))"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision"
    " RETURNING revision"
)
_CREATE = (
    "INSERT INTO vaultside_kv (key, value, revision) VALUES ($1, $2, nextval('vaultside_revision'))"
    " ON CONFLICT (key) DO NOTHING RETURNING revision"
)
_REPLACE = (
    "UPDATE vaultside_kv SET value = $2, revision = nextval('vaultside_revision')"
    " WHERE key = $1 AND revision = $3 RETURNING revision"
)


def translate(exc: BaseException) -> VaultsideError:
    """Map an asyncpg/OS exception to the vaultside error a caller should see.

    Messages are fixed strings plus the SQLSTATE: never the DSN, a key or a value.
    """
    if isinstance(exc, VaultsideError):
        return exc
    err: VaultsideError
    if isinstance(
        exc, asyncpg.exceptions.UniqueViolationError | asyncpg.exceptions.TransactionRollbackError
    ):
        err = ConflictError("concurrent write conflict in storage")
    elif isinstance(exc, asyncpg.exceptions.InvalidAuthorizationSpecificationError):
        err = UpstreamUnavailableError("storage rejected the credentials")
    elif isinstance(exc, _INVALID):
        err = InvalidRequestError("invalid storage key or value")
    elif isinstance(exc, _UNAVAILABLE):
        err = UpstreamUnavailableError("storage is unavailable")
    elif isinstance(exc, asyncpg.exceptions.PostgresError):
        err = UpstreamError(f"storage error (SQLSTATE {exc.sqlstate})")
    else:
        err = UpstreamError("storage error")
    err.__cause__ = exc
    return err


def redact_dsn(dsn: str) -> str:
    """``host:port/db`` of a DSN, without user or password (for reprs and logs)."""
    try:
        parts = urlsplit(dsn)
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "<dsn>"
    return where if parts.scheme else "<dsn>"


async def _no_session_reset(_conn: Any) -> None:
    """Skip asyncpg's reset query on release (one round trip per acquire).

    This module never leaves session state behind (no SET, LISTEN, cursors or session
    advisory locks; the migration lock is transaction-scoped), and asyncpg still rolls back
    an open transaction before calling this.
    """


def _is_dropped(exc: BaseException) -> bool:
    # Client-side argument errors are InterfaceErrors too, but also ValueErrors: not dropped.
    return isinstance(exc, _DROPPED) and not isinstance(exc, ValueError)


async def _put_on(conn: Any, key: str, value: bytes, expect: int | None) -> int:
    if expect is None:
        row = await conn.fetchval(_UPSERT, key, value)
    elif expect == 0:
        row = await conn.fetchval(_CREATE, key, value)
    else:
        row = await conn.fetchval(_REPLACE, key, value, expect)
    if row is None:
        raise ConflictError(f"revision mismatch: expected {expect}")
    return int(row)


async def _delete_on(conn: Any, key: str, expect: int | None) -> bool:
    if expect is None:
        status = await conn.execute("DELETE FROM vaultside_kv WHERE key = $1", key)
        return bool(status != "DELETE 0")
    if expect == 0:
        if await conn.fetchval("SELECT 1 FROM vaultside_kv WHERE key = $1", key) is not None:
            raise ConflictError("revision mismatch: expected 0")
        return False
    deleted = await conn.fetchval(
        "DELETE FROM vaultside_kv WHERE key = $1 AND revision = $2 RETURNING 1", key, expect
    )
    if deleted is None:
        raise ConflictError(f"revision mismatch: expected {expect}")
    return True


class PostgresStorage:
    """A ``StorageBackend`` in PostgreSQL tables ``vaultside_kv`` and ``vaultside_leases``."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_min: int = 1,
        pool_max: int = 10,
        clock: Clock | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        # SECURITY: the DSN may carry a password; it is kept only here and never shown.
        self._dsn = dsn
        self._where = redact_dsn(dsn)
        self._pool_min = pool_min
        self._pool_max = max(pool_max, pool_min, 1)
        self._clock: Clock = clock or SystemClock()
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: Any = None
        self._open_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStorage({self._where!r})"

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the pool and create or migrate the schema. Idempotent."""
        async with self._open_lock:
            if self._pool is not None:
                return
            try:
                pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=self._pool_min,
                    max_size=self._pool_max,
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    reset=_no_session_reset,
                )
            except (ValueError, asyncpg.exceptions.ClientConfigurationError):
                # SECURITY: the parser's message may quote parts of the DSN (which can hold
                # the password), so neither it nor the cause is kept.
                raise InvalidRequestError("invalid PostgreSQL DSN in storage settings") from None
            except Exception as exc:
                raise translate(exc) from exc
            try:
                async with pool.acquire() as conn:
                    await self._migrate(conn)
            except BaseException as exc:
                await pool.close()
                if isinstance(exc, Exception):
                    raise translate(exc) from exc
                raise
            self._pool = pool

    async def _migrate(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_ID)
            # Checked, not "CREATE ... IF NOT EXISTS": that needs CREATE on the schema even when
            # the table exists, and an up-to-date database must open with DML rights only.
            if not await conn.fetchval(
                "SELECT to_regclass('vaultside_schema_version') IS NOT NULL"
            ):
                await conn.execute(
                    "CREATE TABLE vaultside_schema_version (version integer NOT NULL)"
                )
            current = int(
                await conn.fetchval(
                    "SELECT coalesce(max(version), 0) FROM vaultside_schema_version"
                )
            )
            for number, statements in pending_migrations(current, _MIGRATIONS):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("DELETE FROM vaultside_schema_version")
                await conn.execute("INSERT INTO vaultside_schema_version VALUES ($1)", number)

    async def close(self) -> None:
        """Close every pooled connection. Idempotent."""
        async with self._open_lock:
            pool, self._pool = self._pool, None
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), timeout=10)
                except (TimeoutError, OSError, asyncpg.exceptions.InterfaceError):
                    pool.terminate()

    # -- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[[Any], Awaitable[T]], *, retry_dropped: bool) -> T:
        pool = self._pool
        if pool is None:
            raise UpstreamUnavailableError("storage is not open")
        attempts = 2 if retry_dropped else 1
        for attempt in range(attempts):
            try:
                async with pool.acquire() as conn:
                    try:
                        return await fn(conn)
                    except Exception as exc:
                        if _is_dropped(exc):
                            conn.terminate()  # the pool reconnects it on the next acquire
                        raise
            except VaultsideError:
                raise
            except Exception as exc:
                if _is_dropped(exc) and attempt + 1 < attempts:
                    continue
                raise translate(exc) from exc
        raise AssertionError("unreachable")

    async def _transaction(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        async def in_tx(conn: Any) -> T:
            for attempt in range(_DEADLOCK_RETRIES):
                try:
                    async with conn.transaction():
                        return await fn(conn)
                except asyncpg.exceptions.DeadlockDetectedError:
                    # Batches touching the same keys in different orders can deadlock; the
                    # loser rolled back entirely, so running it again is safe.
                    if attempt + 1 == _DEADLOCK_RETRIES:
                        raise
            raise AssertionError("unreachable")

        return await self._run(in_tx, retry_dropped=False)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> Record | None:
        """The record at ``key``, or None."""
        row = await self._run(
            lambda c: c.fetchrow("SELECT value, revision FROM vaultside_kv WHERE key = $1", key),
            retry_dropped=True,
        )
        if row is None:
            return None
        return Record(bytes(row[0]), int(row[1]))

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """Keys starting with ``prefix``, sorted by code point, strictly greater than ``after``."""
        if limit is not None and limit <= 0:
            return []
        end = prefix_end(prefix)
        sql = "SELECT key FROM vaultside_kv WHERE key >= $1 AND key > $2"
        params: list[object] = [prefix, after]
        if end is not None:
            sql += " AND key < $3"
            params.append(end)
        sql += f" ORDER BY key LIMIT ${len(params) + 1}"
        params.append(limit)
        rows = await self._run(lambda c: c.fetch(sql, *params), retry_dropped=True)
        return [str(row[0]) for row in rows]

    # -- writes -----------------------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        """Store ``value`` durably; return the new revision (``ConflictError`` on mismatch)."""
        data = bytes(value)
        return await self._run(
            lambda c: _put_on(c, key, data, expect_revision), retry_dropped=False
        )

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        """Remove ``key``; True if it existed."""
        return await self._run(lambda c: _delete_on(c, key, expect_revision), retry_dropped=False)

    async def write_batch(self, ops: Sequence[Op]) -> None:
        """Apply every op in one transaction: all of them or, on any failed check, none."""
        frozen = tuple(ops)

        async def apply(conn: Any) -> None:
            for op in frozen:
                if isinstance(op, Put):
                    await _put_on(conn, op.key, bytes(op.value), op.expect_revision)
                elif isinstance(op, Delete):
                    await _delete_on(conn, op.key, op.expect_revision)

        if frozen:
            await self._transaction(apply)

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew lease ``name`` for ``holder``; True if ``holder`` holds it afterwards."""
        now = self._clock.now()
        won = await self._run(
            lambda c: c.fetchval(
                "INSERT INTO vaultside_leases (name, holder, expires) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires = excluded.expires"
                " WHERE vaultside_leases.holder = excluded.holder"
                " OR vaultside_leases.expires <= $4"
                " RETURNING holder",
                name,
                holder,
                now + ttl,
                now,
            ),
            retry_dropped=False,
        )
        return bool(won == holder)

    async def lock_holder(self, name: str) -> tuple[str, float] | None:
        """(holder, expires) of the unexpired lease ``name``, or None."""
        row = await self._run(
            lambda c: c.fetchrow(
                "SELECT holder, expires FROM vaultside_leases WHERE name = $1 AND expires > $2",
                name,
                self._clock.now(),
            ),
            retry_dropped=True,
        )
        return (str(row["holder"]), float(row["expires"])) if row else None

    async def unlock(self, name: str, holder: str) -> None:
        """Release lease ``name`` if ``holder`` holds it."""
        await self._run(
            lambda c: c.execute(
                "DELETE FROM vaultside_leases WHERE name = $1 AND holder = $2", name, holder
            ),
            retry_dropped=False,
        )
