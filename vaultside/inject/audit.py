"""Audit of injection decisions: the server's audit events and file sink, in the plugin's file.

The server has no endpoint that accepts audit records from other processes, so the plugin
appends to its own file (``inject.audit_file``, 0600). Each decision is an
``vaultside.audit.events.AuditEvent`` written through an ``AuditBroker`` to a ``FileSink``:
the server's record shape (identifiers, never values; an ``extra`` entry whose key names a
credential is written as ``hmac-sha256:<hex>`` under the hasher key), hash-chained (``seq``,
``prev``, ``hash``) and keyed (``mac``) exactly like the server's audit file, so
``vaultside audit verify FILE --key-file FILE.chain.key`` finds an edited, removed, inserted
or re-chained record.

Keys, created on first use (random, hex, 0600) next to the file unless given:
``<file>.hmac.key`` hashes sensitive values (search the log with ``vaultside audit hash
--key-file``); ``<file>.chain.key`` links the records (the server keeps its chain key in the
barrier; the plugin has none). Anyone who can write the log but not read the chain key cannot
re-chain an edit.

Writing is fail-closed: if the record cannot be written, ``record`` raises
``UpstreamUnavailableError`` and the caller refuses the delivery.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from pathlib import Path

from vaultside.audit.events import AuditEvent
from vaultside.audit.hmac import AuditHasher, load_or_create_key
from vaultside.audit.sinks import AuditBroker, FileSink
from vaultside.clock import Clock, SystemClock
from vaultside.errors import UpstreamUnavailableError, VaultsideError


def key_file_for(path: Path, kind: str) -> Path:
    """The default key file of the audit file ``path``: ``<path>.hmac.key`` / ``.chain.key``."""
    return path.with_name(f"{path.name}.{kind}.key")


class InjectAuditLog:
    """Writes admission decisions as chained, keyed server audit records to one file."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        hmac_key_file: Path | None = None,
        chain_key_file: Path | None = None,
    ) -> None:
        self.path = path
        self.hmac_key_file = hmac_key_file or key_file_for(path, "hmac")
        self.chain_key_file = chain_key_file or key_file_for(path, "chain")
        self._clock = clock or SystemClock()
        self._lock = asyncio.Lock()
        self._broker: AuditBroker | None = None

    async def _opened(self) -> AuditBroker:
        """The broker, its file sink keyed; created on first use (directory and keys too)."""
        async with self._lock:
            if self._broker is None:
                try:
                    hmac_key, chain_key = await asyncio.to_thread(self._load_keys)
                except (OSError, VaultsideError) as exc:
                    raise UpstreamUnavailableError("audit log unavailable") from exc
                sink = FileSink(self.path)
                sink.set_key(chain_key, None, None)
                self._broker = AuditBroker([sink], AuditHasher(hmac_key))
            return self._broker

    def _load_keys(self) -> tuple[bytes, bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return load_or_create_key(self.hmac_key_file), load_or_create_key(self.chain_key_file)

    async def record(
        self,
        *,
        operation: str,
        path: str,
        status: int,
        client: str,
        error: str | None = None,
        extra: Mapping[str, str] | None = None,
        started: float | None = None,
    ) -> None:
        """Write one record; ``UpstreamUnavailableError`` if it cannot be written."""
        broker = await self._opened()
        latency = 0.0 if started is None else (self._clock.monotonic() - started) * 1000
        # SECURITY: records carry references, rule names and reasons — never secret values.
        event = AuditEvent(
            time=self._clock.now(),
            request_id=secrets.token_hex(8),
            accessor=None,
            policies=(),
            operation=operation,
            path=path,
            status=status,
            client=client,
            latency_ms=latency,
            error=error,
            extra=dict(extra or {}),
        )
        await broker.log(event)

    async def close(self) -> None:
        """Wait for pending writes and close the file (a later ``record`` reopens it)."""
        async with self._lock:
            broker, self._broker = self._broker, None
        if broker is not None:
            await broker.close()
