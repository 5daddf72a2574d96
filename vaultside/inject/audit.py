"""Audit of injection decisions: JSON lines with the server's audit record shape, no values.

The server has no endpoint that accepts audit records from other processes, so the plugin and
the sidecar append to their own file (0600). Writing is fail-closed: if the record cannot be
written, the caller refuses the delivery.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from vaultside.clock import Clock, SystemClock
from vaultside.errors import UpstreamUnavailableError


class InjectAuditLog:
    """Appends admission/delivery records to a JSON-lines file."""

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        self.path = path
        self._clock = clock or SystemClock()
        self._lock = asyncio.Lock()

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
        now = self._clock.now()
        latency = 0.0 if started is None else (self._clock.monotonic() - started) * 1000
        # SECURITY: records carry references, rule names and reasons — never secret values.
        rec = {
            "time": now,
            "request_id": secrets.token_hex(8),
            "accessor": None,
            "policies": [],
            "operation": operation,
            "path": path,
            "status": status,
            "client": client,
            "latency_ms": round(latency, 3),
            "error": error,
            "extra": dict(extra or {}),
        }
        line = (json.dumps(rec, sort_keys=True) + "\n").encode()
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                raise UpstreamUnavailableError("audit log unavailable") from exc

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
