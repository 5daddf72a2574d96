"""Files stored at known offsets of an archive on disk, read in big windows and bundled.

On images made of many small files the per-file cost (a read, a ``Chunk``, a detector call)
dominates, not the bytes. Here many files cost one ``pread`` (a ``Window`` of ``WINDOW`` bytes),
and small text files are joined into one *bundle* chunk (``Chunk.parts`` lists where each
file starts and its ``Location``), separated by ``BUNDLE_SEP`` so that no line, word or value
runs from one file into the next. The scanner runs the detectors once over a bundle and then
only on the files that had a candidate (see ``Scanner``), so attribution and filters see
single files.

Files larger than ``BLOCK``, binaries (a NUL in the first ``SNIFF`` bytes: skipped) and nested
archives go the one-file way (``bytes_chunks`` / ``file_chunks``), exactly as before.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator

from vaultside.scan.base import BUNDLE_SEP as SEP
from vaultside.scan.base import Chunk, Location, ScanStats
from vaultside.scan.sources.content import (
    BLOCK,
    MAGICS,
    SNIFF,
    Limits,
    bytes_chunks,
    file_chunks,
)
from vaultside.scan.sources.tarindex import Section, TarFormatError, Window

BUNDLE = 1 << 20  # bytes of text per bundle chunk
WINDOW = 1 << 20  # bytes per pread
_MAGICS = tuple(MAGICS)


def file_at(
    fd: int, offset: int, size: int, loc: Location, stats: ScanStats, limits: Limits
) -> Iterator[Chunk]:
    """Chunks of the one file stored at ``[offset, offset + size)`` of ``fd``."""
    if size <= BLOCK:
        data = os.pread(fd, size, offset)
        if len(data) < size:
            raise TarFormatError("unexpected end of data")
        yield from bytes_chunks(data, loc, stats, limits)
    else:
        yield from file_chunks(
            io.BufferedReader(Section(fd, offset, size), BLOCK), loc, stats, limits
        )


def bundled(
    window: Window,
    items: Iterable[tuple[Location, int, int]],
    stats: ScanStats,
    limits: Limits,
) -> Iterator[Chunk]:
    """Chunks of every ``(location, offset, size)`` file, small text files bundled.

    ``items`` should come in offset order (each window is then read once); they may be
    produced lazily by ``entries`` over the same ``window``.
    """
    fd = window.fd
    pieces: list[bytes | memoryview] = []  # views into window buffers: one copy, in join
    parts: list[tuple[int, Location]] = []
    used = 0
    for loc, offset, size in items:
        if size > BLOCK:
            yield from file_at(fd, offset, size, loc, stats, limits)
            continue
        buf, rel = window.view(offset, size)
        end = rel + size
        # sniff in place (no copy): NUL in the first SNIFF bytes = binary; magic = archive
        if buf.startswith(_MAGICS, rel) or buf[rel + 257 : rel + 262] == b"ustar":
            yield from bytes_chunks(buf[rel:end], loc, stats, limits)
            continue
        stats.files += 1
        if buf.find(b"\0", rel, min(end, rel + SNIFF)) >= 0:
            stats.binary_skipped += 1
            continue
        if not size:
            continue
        stats.bytes_scanned += size
        parts.append((used, loc))
        pieces += (memoryview(buf)[rel:end], SEP)
        used += size + len(SEP)
        if used >= BUNDLE:
            yield _bundle(pieces, parts)
            pieces, parts, used = [], [], 0
    if parts:
        yield _bundle(pieces, parts)


def _bundle(pieces: list[bytes | memoryview], parts: list[tuple[int, Location]]) -> Chunk:
    if len(parts) == 1:
        return Chunk(bytes(pieces[0]), parts[0][1], 1)
    return Chunk(b"".join(pieces), parts[0][1], 1, parts=tuple(parts))
