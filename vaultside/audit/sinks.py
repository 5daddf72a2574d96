"""Audit sinks and the broker that fails closed when none of them accepts a record.

Batching: callers of ``write`` enqueue their record and wait; one flusher task at a time takes
everything pending, writes it with one ``write`` (+ flush, + optional fsync) in a worker
thread, then releases all of those callers. Under load many requests share one syscall, and
each caller still returns only after its own record is in the file. Records are chained in
the order the flusher takes them, which is the order they hit the file.

Several processes may append to one file (see ``FileSink``).

Chain: every record gets ``seq``, ``prev`` and ``hash`` (see ``chain.py``); once the server
holds the chain key (``set_key``, after unseal) also ``mac``, and the sink reports each
batch's last link to the anchor keeper (``vaultside.audit.anchor``). With ``max_bytes`` the
file rotates by size: under the lock, the writer that crosses the limit renames it to
``<name>.<seq of its last record, 12 digits>``; the next batch starts a new file whose first
record links to that last one, so the chain continues across files.

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
import re
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from vaultside.audit.chain import GENESIS, Link, chain
from vaultside.audit.events import AuditEvent
from vaultside.audit.hmac import AuditHasher
from vaultside.audit.summary import DenialSummaries
from vaultside.clock import Clock
from vaultside.errors import UpstreamUnavailableError

log = logging.getLogger(__name__)

_TAIL_CHUNK = 64 * 1024
_LOCK_RETRIES = 20


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of the audit file ``path`` (``<name>.<digits>``), oldest first."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)")
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), n) for n in names if (m := pattern.fullmatch(n))]
    return [path.parent / n for _, n in sorted(found)]


def _tail_of(fd: int, size: int) -> tuple[str, int, bool]:
    """(hash, seq, ends mid-line) of the last line of an open file of ``size`` bytes."""
    if size == 0:
        return GENESIS, 0, False
    buf = b""
    pos = size
    while pos > 0 and buf.rstrip(b"\n").count(b"\n") < 1:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
    partial = not buf.endswith(b"\n")
    last = buf.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        obj = json.loads(last)
        stored, seq = obj.get("hash"), obj.get("seq", 0)
    except (ValueError, AttributeError):
        stored, seq = None, -1
    if isinstance(stored, str) and isinstance(seq, int):
        return stored, seq, partial
    # A damaged last line: chain from the hash of its bytes; verify reports the damage.
    return hashlib.sha256(last).hexdigest(), -1, partial


def _file_tail(path: Path) -> tuple[str, int] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        last, seq, _ = _tail_of(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    return last, seq


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
    renamed away (rotation by this or another writer, or logrotate), the next batch opens a
    new file at the path and continues the chain from the newest rotated file, from this
    writer's own last record, or from the anchor in storage, whichever is furthest: a deleted
    file leaves a visible gap instead of a fresh chain from genesis.
    """

    def __init__(self, path: Path, *, fsync: bool = False, max_bytes: int = 0) -> None:
        self.path = path
        self._fsync = fsync
        self._max_bytes = max_bytes
        self._fd: int | None = None
        self._identity: tuple[int, int] = (0, 0)
        self._regular = False
        self._last = GENESIS
        self._seq = 0
        self._end = -1  # file size after our own last write; -1: unknown, re-read the tail
        self._batcher = _Batcher(self._flush)
        self._closed = False
        # SECURITY: the chain key comes from the barrier (set after unseal), never a file.
        self._key: bytes | None = None
        self._anchor: Link | None = None
        self._on_link: Callable[[Link], None] | None = None
        self._last_link: Link | None = None

    def set_key(
        self, key: bytes, anchor: Link | None, on_link: Callable[[Link], None] | None
    ) -> None:
        """From now on link records with an HMAC under ``key``; report links to ``on_link``.

        ``anchor`` is the latest link stored: a new, empty file continues from it.
        """
        self._key, self._anchor, self._on_link = key, anchor, on_link

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
        link, self._last_link = self._last_link, None
        if link is not None and self._on_link is not None:
            self._on_link(link)

    def _drop_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _locked_fd(self) -> int:
        """The open file, locked (if regular), and still the one at ``path``."""
        for _ in range(_LOCK_RETRIES):
            fd = self._ensure_open()
            if not self._regular:
                return fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._identity:
                    return fd
            except FileNotFoundError:
                pass
            # Rotated by another writer while we waited for the lock: write to the new file.
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._drop_fd()
        raise OSError("audit file keeps being replaced")

    def _continue_from(self) -> tuple[str, int]:
        """Where a new, empty file continues the chain: the furthest known position."""
        options = [(self._last, self._seq)]
        rotated = rotated_files(self.path)
        if rotated and (tail := _file_tail(rotated[-1])) is not None:
            options.append(tail)
        if self._anchor is not None:
            options.append((self._anchor.hash, self._anchor.seq))
        return max(options, key=lambda o: o[1])

    def _write_batch(self, records: list[dict[str, object]]) -> None:
        """Runs in a worker thread; the batcher guarantees one at a time per sink."""
        fd = self._locked_fd()
        key = self._key
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            partial = False
            if self._regular and start != self._end:
                if start == 0:
                    self._last, self._seq = self._continue_from()
                else:
                    last, seq, partial = _tail_of(fd, start)
                    self._last, self._seq = last, seq if seq >= 0 else self._seq
            prev, seq = self._last, self._seq
            mac: str | None = None
            parts = [b"\n"] if partial else []
            for record in records:
                seq += 1
                line, prev, mac = chain(record, prev, seq, key)
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
            self._last, self._seq = prev, seq
            self._end = start + len(data)
            if mac is not None:
                self._last_link = Link(seq, prev, mac)
            if self._regular and self._max_bytes and self._end >= self._max_bytes:
                self._rotate(seq)
        finally:
            if self._regular:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _rotate(self, seq: int) -> None:
        """Under the lock: rename the full file away; the next batch starts a new one."""
        target = self.path.with_name(f"{self.path.name}.{seq:012d}")
        if target.exists():
            log.error("audit rotation target exists", extra={"path": str(target)})
            return
        try:
            os.rename(self.path, target)
        except OSError as exc:  # the records are written; keep appending to this file
            log.error("audit rotation failed", extra={"path": str(target), "errno": exc.errno})
            return
        self._end = -1

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
        self._end = -1
        return fd


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

    def __init__(
        self,
        sinks: Sequence[AuditSink],
        hasher: AuditHasher,
        *,
        clock: Clock | None = None,
        summary_interval: float = 0.0,
        summary_max_clients: int = 1000,
    ) -> None:
        self._sinks = list(sinks)
        self.hasher = hasher
        self.denials: DenialSummaries | None = None
        if clock is not None and summary_interval > 0:
            self.denials = DenialSummaries(
                self.log, clock, interval=summary_interval, max_clients=summary_max_clients
            )

    @property
    def file_sinks(self) -> list[FileSink]:
        """The chained file sinks (the anchor keeper hands them the chain key)."""
        return [s for s in self._sinks if isinstance(s, FileSink)]

    async def log_denial(self, client_key: str, event: AuditEvent) -> None:
        """Log a denial of an unidentified request: written, or counted into a summary."""
        if self.denials is None or not self.denials.absorb(client_key, event):
            await self.log(event)

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
        """Write pending denial summaries, then close every sink."""
        if self.denials is not None:
            await self.denials.close()
        for sink in self._sinks:
            await sink.close()
