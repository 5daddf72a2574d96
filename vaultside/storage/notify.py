"""Change feeds: a storage backend tells every server which keys changed.

A ``ChangeFeed`` is an optional capability next to ``StorageBackend``: callbacks receive the
storage key of each committed change (as stored, e.g. ``logical/auth/token/<hash>``), or
``None`` for "anything may have changed" (after a reconnect, when notifications may have
been missed). It only speeds up cache invalidation: every cache keeps its own bounded
staleness (1 s), so a lost or late notification is never a correctness problem.

PostgreSQL: a trigger on ``vaultside_kv`` (schema version 2, see ``storage/postgres.py``)
calls ``pg_notify('vaultside_changes', key)`` for keys under ``logical/auth/`` and for
``core/keyring``; notifications are sent at commit, so a listener never sees a change that
was rolled back. ``PostgresChangeFeed`` holds one dedicated connection (not from the pool)
that ``LISTEN``s, probes it every ``probe_interval`` seconds (a silently dead TCP connection
delivers nothing), and reconnects after ``retry_delay`` when it is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg

from vaultside.lifecycle import LoopTask
from vaultside.storage.postgres import redact_dsn

log = logging.getLogger(__name__)

CHANNEL = "vaultside_changes"

ChangeCallback = Callable[[str | None], None]


class ChangeFeed(Protocol):
    """Delivers the keys of committed changes (made by any server) to subscribers."""

    @property
    def connected(self) -> bool:
        """True while changes are being delivered (otherwise caches rely on staleness)."""
        ...

    def subscribe(self, callback: ChangeCallback) -> None:
        """Call ``callback(key)`` for each change, ``callback(None)`` when some may be lost."""
        ...

    async def start(self) -> None:
        """Begin listening (in the background; never fails because the database is down)."""
        ...

    async def close(self) -> None:
        """Stop listening. Idempotent."""
        ...


class PostgresChangeFeed:
    """``LISTEN vaultside_changes`` on a dedicated asyncpg connection that reconnects."""

    def __init__(
        self,
        dsn: str,
        *,
        retry_delay: float = 1.0,
        probe_interval: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        # SECURITY: the DSN may carry a password; kept here only, never logged or shown.
        self._dsn = dsn
        self._where = redact_dsn(dsn)
        self._retry_delay = retry_delay
        self._probe_interval = probe_interval
        self._connect_timeout = connect_timeout
        self._callbacks: list[ChangeCallback] = []
        self._loop = LoopTask(self._run, name="change-feed")
        self._connected = False
        self._warned = False
        self._listening = asyncio.Event()
        self.received = 0

    def __repr__(self) -> str:
        return f"PostgresChangeFeed({self._where!r}, connected={self._connected})"

    @property
    def connected(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._connected

    def subscribe(self, callback: ChangeCallback) -> None:
        """Add a subscriber; called on the event loop, must not block."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Start the listener task (idempotent)."""
        self._loop.start()

    async def wait_listening(self, within: float) -> bool:
        """Wait until the first LISTEN succeeded (for start-up ordering and tests)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), within)
        return self._connected

    async def close(self) -> None:
        """Stop listening and drop the connection."""
        await self._loop.close()
        self._connected = False

    def _emit(self, key: str | None) -> None:
        for callback in self._callbacks:
            try:
                callback(key)
            except Exception:
                log.exception("change feed subscriber failed")

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.received += 1
        self._emit(payload)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Fixed text: a driver message could quote the DSN. Warn once per outage.
                log.log(
                    logging.DEBUG if self._warned else logging.WARNING,
                    "change feed disconnected; caches fall back to bounded staleness",
                    extra={"where": self._where, "error": type(exc).__name__},
                )
                self._warned = True
            if self._connected:
                self._connected = False
                self._emit(None)
            await asyncio.sleep(self._retry_delay)

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
            self._connected = True
            self._warned = False
            self._listening.set()
            # Anything may have changed while nobody listened.
            self._emit(None)
            log.info("change feed listening", extra={"where": self._where})
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._probe_interval)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=self._probe_interval)
            raise ConnectionError("change feed connection closed")
        finally:
            conn.terminate()
