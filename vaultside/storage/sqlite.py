"""The embedded default backend: one SQLite file in WAL mode.

Concurrency design (the API must read at >10k req/s and absorb many concurrent writers):

- All writes go to ONE dedicated writer thread with its own connection. It drains its queue,
  opens one ``BEGIN IMMEDIATE`` transaction, applies each caller's op-group inside its own
  ``SAVEPOINT`` (so one failed revision check fails only that caller), then issues a single
  ``COMMIT`` — one fsync (``synchronous=FULL``) for the whole batch — and resolves each
  caller's future on its event loop (group commit).
- Point reads and lists run inline on the event-loop thread on a separate read connection;
  see ``_read`` for why that is a deliberate exception.
- Several processes may open the same file (``server.workers > 1``): WAL lets readers run
  beside the writer, ``busy_timeout`` makes a writer wait for another process's write lock,
  and the migration step takes the write lock so only one process migrates.

A write whose caller is cancelled may still be committed (it is already queued).
Revisions come from one counter table, so they never repeat for a key even after a delete
(no ABA on compare-and-set). Lease expiry uses the injected ``Clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vaultside.clock import Clock, SystemClock
from vaultside.errors import (
    ConflictError,
    InvalidRequestError,
    UpstreamUnavailableError,
    VaultsideError,
)
from vaultside.storage.base import Delete, Op, Put, Record
from vaultside.storage.schema import pending_migrations

log = logging.getLogger(__name__)

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
        " revision INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TABLE counter (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)",
        "INSERT INTO counter (id, n) VALUES (1, 0)",
        "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL,"
        " expires REAL NOT NULL) WITHOUT ROWID",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
_MAX_CODEPOINT = 0x10FFFF

_TxFn = Callable[[sqlite3.Connection], Any]
_Job = tuple[_TxFn, "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(chr(_MAX_CODEPOINT))
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return stripped[:-1] + chr(nxt)


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _check_revision(conn: sqlite3.Connection, key: str, expect: int | None) -> int:
    row = conn.execute("SELECT revision FROM kv WHERE key = ?", (key,)).fetchone()
    current = int(row[0]) if row else 0
    if expect is not None and current != expect:
        raise ConflictError(f"revision mismatch at {key!r}: expected {expect}, found {current}")
    return current


def _apply_put(conn: sqlite3.Connection, op: Put) -> int:
    if op.expect_revision is not None:
        _check_revision(conn, op.key, op.expect_revision)
    rev = int(conn.execute("UPDATE counter SET n = n + 1 WHERE id = 1 RETURNING n").fetchone()[0])
    conn.execute(
        "INSERT INTO kv (key, value, revision) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET value = excluded.value, revision = excluded.revision",
        (op.key, op.value, rev),
    )
    return rev


def _apply_delete(conn: sqlite3.Connection, op: Delete) -> bool:
    if op.expect_revision is not None:
        _check_revision(conn, op.key, op.expect_revision)
    return conn.execute("DELETE FROM kv WHERE key = ?", (op.key,)).rowcount > 0


def _apply_ops(conn: sqlite3.Connection, ops: Sequence[Op]) -> None:
    for op in ops:
        if isinstance(op, Put):
            _apply_put(conn, op)
        else:
            _apply_delete(conn, op)


def _translate(exc: Exception) -> VaultsideError:
    if isinstance(exc, VaultsideError):
        return exc
    if isinstance(exc, (UnicodeError, ValueError, TypeError, OverflowError)):
        err: VaultsideError = InvalidRequestError("invalid storage key or value")
    else:
        err = UpstreamUnavailableError("storage is unavailable")
    err.__cause__ = exc
    return err


class SqliteStorage:
    """A ``StorageBackend`` in one SQLite file (created 0600, WAL, durable commits)."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        busy_timeout_ms: int = 10_000,
        max_batch: int = 1024,
    ) -> None:
        self.path = path
        self._clock: Clock = clock or SystemClock()
        self._busy_ms = busy_timeout_ms
        self._max_batch = max_batch
        self._reader: sqlite3.Connection | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteStorage({str(self.path)!r})"

    # -- lifecycle ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        conn.execute("PRAGMA synchronous = FULL")
        # SECURITY: overwrite deleted rows with zeros, so a destroyed version's ciphertext
        # does not linger in free pages (old WAL frames go at the next checkpoint).
        conn.execute("PRAGMA secure_delete = ON")
        return conn

    def _prepare(self) -> None:
        # SECURITY: create the file 0600 before SQLite touches it; SQLite gives the -wal and
        # -shm files the mode of the database file.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                for number, statements in pending_migrations(int(row[0] or 0), _MIGRATIONS):
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute("DELETE FROM schema_version")
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            target = Path(f"{self.path}{suffix}")
            if target.exists() and target.stat().st_uid == os.getuid():
                target.chmod(0o600)

    async def open(self) -> None:
        """Create or migrate the file and start the writer thread. Idempotent."""
        if self._reader is not None:
            return
        try:
            await asyncio.to_thread(self._prepare)
            writer = await asyncio.to_thread(self._connect)
            reader = self._connect()
            reader.execute("PRAGMA query_only = 1")
        except (sqlite3.Error, OSError) as exc:
            raise UpstreamUnavailableError(f"cannot open database {self.path}") from exc
        self._closed = False
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._writer_main,
            args=(writer,),
            name=f"sqlite-writer:{self.path.name}",
            daemon=True,
        )
        self._thread.start()
        self._reader = reader

    async def close(self) -> None:
        """Finish queued writes, stop the writer thread, close connections. Idempotent."""
        if self._reader is None or self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._reader.close()
        self._reader = None

    # -- the writer thread ----------------------------------------------------------------

    def _writer_main(self, conn: sqlite3.Connection) -> None:
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                jobs = [first]
                while len(jobs) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    jobs.append(nxt)
                try:
                    self._run_batch(conn, jobs)
                except Exception as exc:  # never let the writer die with callers waiting
                    log.exception("sqlite writer batch failed")
                    self._fail(jobs, _translate(exc))
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, _fut, _loop in jobs:
                conn.execute("SAVEPOINT op")
                try:
                    result = fn(conn)
                except Exception as exc:  # each group fails alone; the batch goes on
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((None, _translate(exc)))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = [(None, _translate(exc)) for _ in jobs]
        for (_fn, fut, loop), (result, err) in zip(jobs, outcomes, strict=True):
            # RuntimeError: the caller's loop is gone, so nobody is waiting for this result.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, result, err)

    @staticmethod
    def _fail(jobs: list[_Job], err: BaseException) -> None:
        for _fn, fut, loop in jobs:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, None, err)

    async def _write(self, fn: _TxFn) -> Any:
        if self._reader is None or self._closed:
            raise UpstreamUnavailableError("storage is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.put((fn, fut, loop))
        return await fut

    # -- reads ------------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[object]) -> list[Any]:
        # Deliberate exception to "no blocking calls on the event loop": these are indexed
        # point reads and short range scans answered from the page cache in microseconds
        # (about 190k/s here); a thread hop would cost more than the read itself. WAL means
        # readers never wait for the writer.
        if self._reader is None:
            raise UpstreamUnavailableError("storage is not open")
        try:
            return self._reader.execute(sql, params).fetchall()
        except Exception as exc:
            raise _translate(exc) from exc

    async def get(self, key: str) -> Record | None:
        """The record at ``key``, or None."""
        rows = self._read("SELECT value, revision FROM kv WHERE key = ?", (key,))
        if not rows:
            return None
        return Record(bytes(rows[0][0]), int(rows[0][1]))

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """Keys starting with ``prefix``, sorted by code point, strictly greater than ``after``."""
        sql = "SELECT key FROM kv WHERE key >= ? AND key > ?"
        params: list[object] = [prefix, after]
        end = prefix_end(prefix)
        if end is not None:
            sql += " AND key < ?"
            params.append(end)
        sql += " ORDER BY key LIMIT ?"
        params.append(-1 if limit is None else max(limit, 0))
        return [str(row[0]) for row in self._read(sql, params)]

    # -- writes -----------------------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        """Store ``value`` durably; return the new revision (``ConflictError`` on mismatch)."""
        op = Put(key, bytes(value), expect_revision)
        return int(await self._write(lambda conn: _apply_put(conn, op)))

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        """Remove ``key``; True if it existed."""
        op = Delete(key, expect_revision)
        return bool(await self._write(lambda conn: _apply_delete(conn, op)))

    async def write_batch(self, ops: Sequence[Op]) -> None:
        """Apply every op atomically (one savepoint): all of them or none."""
        frozen = tuple(ops)
        await self._write(lambda conn: _apply_ops(conn, frozen))

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew lease ``name`` for ``holder``; True if ``holder`` holds it afterwards."""
        now = self._clock.now()

        def fn(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires = excluded.expires"
                " WHERE leases.holder = excluded.holder OR leases.expires <= ?",
                (name, holder, now + ttl, now),
            )
            row = conn.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
            return bool(row and row[0] == holder)

        return bool(await self._write(fn))

    async def lock_holder(self, name: str) -> tuple[str, float] | None:
        """(holder, expires) of the unexpired lease ``name``, or None."""
        rows = self._read(
            "SELECT holder, expires FROM leases WHERE name = ? AND expires > ?",
            (name, self._clock.now()),
        )
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    async def unlock(self, name: str, holder: str) -> None:
        """Release lease ``name`` if ``holder`` holds it."""
        await self._write(
            lambda conn: conn.execute(
                "DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)
            )
        )
