"""One file's byte stream into chunks: binary sniffing, line-aligned blocks, nested archives.

Memory stays bounded: text is read in ``BLOCK``-sized pieces cut at a line boundary; tar,
gzip and zstd streams are read as streams; only zip (which needs seeking) is held in memory,
and only up to ``Limits.max_nested_bytes``.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, cast

import zstandard

from vaultside.scan.base import Chunk, Location, ScanStats

BLOCK = 1 << 20
SNIFF = 8192
_MAX_LINE_CARRY = 4 * BLOCK  # a "line" longer than this is cut at a space or punctuation
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAGICS = (_ZIP_MAGIC, _GZIP_MAGIC, _ZSTD_MAGIC)  # what ``archive_kind`` knows, tar aside
ARCHIVE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    zstandard.ZstdError,
    EOFError,
    OSError,  # gzip.BadGzipFile and truncated reads
    ValueError,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """How far the scanner digs into nested archives."""

    max_depth: int = 3
    max_nested_bytes: int = 64 * 1024 * 1024


class Prefixed(io.RawIOBase):
    """A reader that replays already-read bytes before the rest of a stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def read_head(f: IO[bytes], n: int = SNIFF) -> bytes:
    """Up to ``n`` bytes (fewer only at end of stream)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        piece = f.read(n - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


def is_tar(head: bytes) -> bool:
    """A ustar/gnu tar header at the start of ``head``."""
    return len(head) >= 262 and head[257:262] == b"ustar"


def archive_kind(head: bytes) -> str | None:
    """``zip``, ``gzip``, ``zstd``, ``tar`` or None, from magic bytes."""
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if is_tar(head):
        return "tar"
    return None


def decompressed(kind: str, f: IO[bytes]) -> IO[bytes]:
    """A stream of the decompressed bytes of a gzip or zstd stream."""
    if kind == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=f, mode="rb"))
    reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    return reader


def text_chunks(head: bytes, f: IO[bytes], loc: Location, stats: ScanStats) -> Iterator[Chunk]:
    """Line-aligned chunks of a text stream whose first bytes (``head``) were already read."""
    line = 1
    buf = head
    while True:
        more = f.read(BLOCK)
        if more:
            buf += more
            if len(buf) < BLOCK:
                continue
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                if len(buf) < _MAX_LINE_CARRY:
                    continue
                cut = max(buf.rfind(b" "), buf.rfind(b";"), buf.rfind(b","), len(buf) // 2) + 1
        else:
            cut = len(buf)
        piece, buf = buf[:cut], buf[cut:]
        if piece:
            stats.bytes_scanned += len(piece)
            yield Chunk(piece, loc, line)
        if not more:
            return
        line += piece.count(b"\n")


def bytes_chunks(
    data: bytes, loc: Location, stats: ScanStats, limits: Limits, depth: int = 0
) -> Iterator[Chunk]:
    """Like ``file_chunks`` for a file already in memory (no stream copies)."""
    head = data[:SNIFF]
    if archive_kind(head) is not None or len(data) > BLOCK:
        yield from file_chunks(io.BytesIO(data), loc, stats, limits, depth)
        return
    stats.files += 1
    if b"\0" in head:
        stats.binary_skipped += 1
        return
    if data:
        stats.bytes_scanned += len(data)
        yield Chunk(data, loc, 1)


def file_chunks(
    f: IO[bytes], loc: Location, stats: ScanStats, limits: Limits, depth: int = 0
) -> Iterator[Chunk]:
    """Chunks of one file: text as is, archives opened (to ``limits``), binaries skipped."""
    head = read_head(f)
    kind = archive_kind(head)
    stats.files += 1
    if kind is not None:
        if depth >= limits.max_depth:
            stats.warn(f"{loc.display()}: nested archive deeper than {limits.max_depth}, skipped")
            return
        try:
            yield from _nested(kind, head, f, loc, stats, limits, depth)
        except ARCHIVE_ERRORS as exc:
            stats.warn(f"{loc.display()}: unreadable {kind} archive ({type(exc).__name__})")
        return
    if b"\0" in head:
        stats.binary_skipped += 1
        return
    yield from text_chunks(head, f, loc, stats)


def _nested(
    kind: str,
    head: bytes,
    f: IO[bytes],
    loc: Location,
    stats: ScanStats,
    limits: Limits,
    depth: int,
) -> Iterator[Chunk]:
    stats.archives_opened += 1
    if kind == "zip":
        data = head + f.read(limits.max_nested_bytes + 1 - len(head))
        if len(data) > limits.max_nested_bytes:
            stats.warn(f"{loc.display()}: zip larger than {limits.max_nested_bytes} bytes, skipped")
            return
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if info.is_dir() or info.flag_bits & 0x1:  # encrypted members cannot be read
                    continue
                inner = replace(loc, nested=(*loc.nested, info.filename), line=None)
                with zf.open(info) as member:
                    yield from file_chunks(member, inner, stats, limits, depth + 1)
        return
    stream: IO[bytes] = io.BufferedReader(Prefixed(head, f), BLOCK)
    if kind in ("gzip", "zstd"):
        stream = decompressed(kind, stream)
        inner_head = read_head(stream, 512)
        if not is_tar(inner_head):
            # A single compressed file (e.g. app.log.gz): scan what it decompresses to.
            yield from file_chunks(
                io.BufferedReader(Prefixed(inner_head, stream)), loc, stats, limits, depth + 1
            )
            return
        stream = io.BufferedReader(Prefixed(inner_head, stream), BLOCK)
    yield from tar_members(stream, loc, stats, limits, depth + 1)


def tar_members(
    stream: IO[bytes], loc: Location, stats: ScanStats, limits: Limits, depth: int
) -> Iterator[Chunk]:
    """Chunks of every regular file of a tar stream (read once, in order)."""
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        for member in tf:
            if not member.isfile():
                continue
            fobj = tf.extractfile(member)
            if fobj is None:
                continue
            inner = replace(loc, nested=(*loc.nested, member.name), line=None)
            yield from file_chunks(fobj, inner, stats, limits, depth)
