"""Audit sinks and the broker that fails closed when none of them accepts a record.

Batching: callers of ``write`` enqueue their record and wait; one flusher task at a time takes
everything pending, writes it with one ``write`` (+ flush, + optional fsync) in a worker
thread, then releases all of those callers. Under load many requests share one syscall, and
each caller still returns only after its own record is in the file. Records are chained in
the order the flusher takes them, which is the order they hit the file.

Several processes may append to one file (see ``FileSink``).

Failure: if a batch cannot be written, the file is truncated back to where the batch began
(no half line, the chain stays consistent) and every caller in it gets
``UpstreamUnavailableError``. The next write tries again (re-opening the file if needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO

from vaultside.audit.chain import GENESIS, chain
from vaultside.audit.events import AuditEvent
from vaultside.audit.hmac import AuditHasher
from vaultside.errors import UpstreamUnavailableError

log = logging.getLogger(__name__)

_TAIL_CHUNK = 64 * 1024


class AuditSink(Protocol):
    """Writes already-redacted records durably; raises if it could not."""

    async def write(self, record: dict[str, object]) -> None:
        """Return only once ``record`` is written; raise otherwise."""
        ...

    async def close(self) -> None:
        """Flush what is pending and release resources. Idempotent."""
        ...


class _Batcher:
    """Groups concurrent ``submit`` calls into one ``flush(records)`` call at a time."""

    def __init__(self, flush: _Flush) -> None:
        self._flush = flush
        self._pending: list[tuple[dict[str, object], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, record: dict[str, object]) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((record, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await fut

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._flush([r for r, _ in batch])
            except Exception as exc:  # handed to every waiting caller
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)


class _Flush(Protocol):
    async def __call__(self, records: list[dict[str, object]], /) -> None: ...


class FileSink:
    """Append-only JSON lines file, mode 0600, hash-chained, with batched writes.

    Several processes (server workers) may share one file: each batch is written under an
    exclusive ``flock``, and a writer that finds the file grew since its own last write
    re-reads the last line and chains from it, so the file holds one chain. If the file is
    renamed away (log rotation), the next batch opens a new file at the path.
    """

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._fd: int | None = None
        self._identity: tuple[int, int] = (0, 0)
        self._regular = False
        self._last = GENESIS
        self._end = -1  # file size after our own last write; -1: unknown, re-read the tail
        self._batcher = _Batcher(self._flush)
        self._closed = False

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r})"

    async def write(self, record: dict[str, object]) -> None:
        """Append ``record`` (chained); raises ``UpstreamUnavailableError`` if it was not."""
        if self._closed:
            raise UpstreamUnavailableError("audit file sink is closed")
        await self._batcher.submit(record)

    async def close(self) -> None:
        """Wait for pending writes, then close the file."""
        self._closed = True
        await self._batcher.drain()
        self._drop_fd()

    async def _flush(self, records: list[dict[str, object]]) -> None:
        try:
            await asyncio.to_thread(self._write_batch, records)
        except OSError as exc:
            self._drop_fd()
            log.error("audit file write failed", extra={"path": str(self.path), "errno": exc.errno})
            raise UpstreamUnavailableError("audit file write failed") from exc

    def _drop_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _write_batch(self, records: list[dict[str, object]]) -> None:
        """Runs in a worker thread; the batcher guarantees one at a time per sink."""
        fd = self._ensure_open()
        if self._regular:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            partial = False
            if self._regular and start != self._end:
                self._last, partial = self._tail(fd, start)
            prev = self._last
            parts = [b"\n"] if partial else []
            for record in records:
                line, prev = chain(record, prev)
                parts.append(line)
            data = b"".join(parts)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._fsync:
                    os.fsync(fd)
            except OSError:
                if self._regular:
                    # Never leave half a batch behind: the chain must stay verifiable.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)
                self._end = -1
                raise
            self._last = prev
            self._end = start + len(data)
        finally:
            if self._regular:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _ensure_open(self) -> int:
        if self._fd is not None:
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._identity:
                    return self._fd
            except FileNotFoundError:
                pass
            self._drop_fd()  # rotated away: start a new file at the path
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        # SECURITY: the audit file is created 0600 and tightened to 0600 if it was looser.
        fd = os.open(self.path, flags, 0o600)
        try:
            st = os.fstat(fd)
            self._regular = stat.S_ISREG(st.st_mode)
            if self._regular and stat.S_IMODE(st.st_mode) & 0o077:
                os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._identity = fd, (st.st_dev, st.st_ino)
        self._last, self._end = GENESIS, -1
        return fd

    @staticmethod
    def _tail(fd: int, size: int) -> tuple[str, bool]:
        """The hash to chain from (last line's), and whether the file ends mid-line."""
        if size == 0:
            return GENESIS, False
        buf = b""
        pos = size
        while pos > 0 and buf.rstrip(b"\n").count(b"\n") < 1:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            buf = os.pread(fd, step, pos) + buf
        partial = not buf.endswith(b"\n")
        last = buf.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            stored = json.loads(last).get("hash")
        except (ValueError, AttributeError):
            stored = None
        if isinstance(stored, str):
            return stored, partial
        # A damaged last line: chain from the hash of its bytes; verify reports the damage.
        return hashlib.sha256(last).hexdigest(), partial


class StdoutSink:
    """JSON lines on stdout (or another text stream), batched; not chained."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._batcher = _Batcher(self._flush)

    async def write(self, record: dict[str, object]) -> None:
        """Write ``record`` as one JSON line; raises ``UpstreamUnavailableError`` on failure."""
        await self._batcher.submit(record)

    async def close(self) -> None:
        """Wait for pending writes."""
        await self._batcher.drain()

    async def _flush(self, records: list[dict[str, object]]) -> None:
        stream = self._stream or sys.stdout
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        try:
            await asyncio.to_thread(self._emit, stream, text)
        except (OSError, ValueError) as exc:
            raise UpstreamUnavailableError("audit stdout write failed") from exc

    @staticmethod
    def _emit(stream: TextIO, text: str) -> None:
        stream.write(text)
        stream.flush()


class AuditBroker:
    """Redacts events and writes them to every sink; fails closed if none accepted."""

    def __init__(self, sinks: Sequence[AuditSink], hasher: AuditHasher) -> None:
        self._sinks = list(sinks)
        self.hasher = hasher

    async def log(self, event: AuditEvent) -> None:
        """Write ``event``; ``UpstreamUnavailableError("audit log unavailable")`` if no sink did."""
        record = event.to_record(self.hasher)
        results: list[object]
        if len(self._sinks) == 1:  # the common case, without gather's task per sink
            try:
                await self._sinks[0].write(record)
                results = [None]
            except Exception as exc:
                results = [exc]
        else:
            results = await asyncio.gather(
                *(sink.write(dict(record)) for sink in self._sinks), return_exceptions=True
            )
        accepted = 0
        for sink, result in zip(self._sinks, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "audit sink refused a record",
                    extra={"sink": repr(sink), "error_type": type(result).__name__},
                )
            else:
                accepted += 1
        # SECURITY: fail closed — no audit record, no answer.
        if accepted == 0:
            raise UpstreamUnavailableError("audit log unavailable")

    async def close(self) -> None:
        """Close every sink."""
        for sink in self._sinks:
            await sink.close()
