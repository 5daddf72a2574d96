"""One file's byte stream into chunks: binary sniffing, line-aligned blocks, nested archives.

Memory stays bounded: text is read in ``BLOCK``-sized pieces cut at a line boundary; tar,
gzip, zstd, xz and bzip2 streams are read as streams; only zip (which needs seeking) is held
in memory, and only up to ``Limits.max_nested_bytes``. A compressed file inside a scanned file
or archive is read up to ``Limits.max_decompressed_bytes`` of output (a decompression bomb
stops there, with a warning).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, cast

import zstandard

from vaultside.scan.base import NO_LINES, Chunk, Location, ScanStats
from vaultside.scan.sources.binstrings import MAX_STRINGS_FILE, extract, strings_kind

BLOCK = 1 << 20
SNIFF = 8192
_MAX_LINE_CARRY = 4 * BLOCK  # a "line" longer than this is cut at a space or punctuation
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZ2_MAGIC = b"BZh"  # then the block size digit and a block or end-of-stream magic
_BZ2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")
MAGICS = (_ZIP_MAGIC, _GZIP_MAGIC, _ZSTD_MAGIC, _XZ_MAGIC, _BZ2_MAGIC)  # tar aside
COMPRESSED = ("gzip", "zstd", "xz", "bzip2")
ARCHIVE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    zstandard.ZstdError,
    lzma.LZMAError,
    EOFError,
    OSError,  # gzip.BadGzipFile and truncated reads
    ValueError,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """How far the scanner digs into nested archives."""

    max_depth: int = 3
    max_nested_bytes: int = 64 * 1024 * 1024
    max_decompressed_bytes: int = 1024 * 1024 * 1024  # per nested compressed file


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


class Capped(io.RawIOBase):
    """A decompressed stream that ends (with a warning) after ``cap`` bytes."""

    def __init__(self, inner: IO[bytes], cap: int, loc: Location, stats: ScanStats) -> None:
        self._inner = inner
        self._left = cap
        self._cap = cap
        self._loc = loc
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        if self._left < 0:
            return 0
        data = self._inner.read(min(len(b), self._left + 1))
        if len(data) > self._left:
            self._stats.warn(
                f"{self._loc.display()}: decompresses to more than {self._cap} bytes, cut there"
            )
            data = data[: self._left]
            self._left = -1
        else:
            self._left -= len(data)
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
    """``zip``, ``gzip``, ``zstd``, ``xz``, ``bzip2``, ``tar`` or None, from magic bytes."""
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if head.startswith(_BZ2_MAGIC) and head[3:4].isdigit() and head[4:10] in _BZ2_BLOCKS:
        return "bzip2"
    if is_tar(head):
        return "tar"
    return None


def decompressed(kind: str, f: IO[bytes]) -> IO[bytes]:
    """A stream of the decompressed bytes of a gzip, zstd, xz or bzip2 stream."""
    if kind == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=f, mode="rb"))
    if kind == "xz":
        return cast(IO[bytes], lzma.LZMAFile(f, "rb"))
    if kind == "bzip2":
        return cast(IO[bytes], bz2.BZ2File(f, "rb"))
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
        yield from binary_strings(head, data, loc, stats)
        return
    if data:
        stats.bytes_scanned += len(data)
        yield Chunk(data, loc, 1)


def file_chunks(
    f: IO[bytes], loc: Location, stats: ScanStats, limits: Limits, depth: int = 0
) -> Iterator[Chunk]:
    """Chunks of one file: text as is, archives opened (to ``limits``), the strings of known
    binary formats (``binstrings``), other binaries skipped."""
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
        if strings_kind(head) is None:
            stats.binary_skipped += 1
            return
        rest = f.read(MAX_STRINGS_FILE + 1 - len(head))
        yield from binary_strings(head, head + rest, loc, stats)
        return
    yield from text_chunks(head, f, loc, stats)


def binary_strings(head: bytes, data: bytes, loc: Location, stats: ScanStats) -> Iterator[Chunk]:
    """The strings of a binary file of a known format (``binstrings``); other binaries skipped."""
    kind = strings_kind(head)
    if kind is None or len(data) > MAX_STRINGS_FILE:
        stats.binary_skipped += 1
        return
    text = extract(kind, bytes(data))
    if text:
        stats.bytes_scanned += len(text)
        yield Chunk(text, loc, NO_LINES)


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
    if kind in COMPRESSED:
        cap = limits.max_decompressed_bytes
        stream = io.BufferedReader(Capped(decompressed(kind, stream), cap, loc, stats), BLOCK)
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
