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
    SNIFF,
    Limits,
    archive_kind,
    bytes_chunks,
    file_chunks,
)
from vaultside.scan.sources.tarindex import Section, TarFormatError, Window

BUNDLE = 1 << 20  # bytes of text per bundle chunk
WINDOW = 1 << 20  # bytes per pread


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
    pieces: list[bytes] = []
    parts: list[tuple[int, Location]] = []
    used = 0
    for loc, offset, size in items:
        if size > BLOCK:
            yield from file_at(fd, offset, size, loc, stats, limits)
            continue
        data = window.read(offset, size)
        head = data[:SNIFF]
        if archive_kind(head) is not None:
            yield from bytes_chunks(data, loc, stats, limits)
            continue
        stats.files += 1
        if b"\0" in head:
            stats.binary_skipped += 1
            continue
        if not data:
            continue
        stats.bytes_scanned += size
        parts.append((used, loc))
        pieces += (data, SEP)
        used += size + len(SEP)
        if used >= BUNDLE:
            yield _bundle(pieces, parts)
            pieces, parts, used = [], [], 0
    if parts:
        yield _bundle(pieces, parts)


def _bundle(pieces: list[bytes], parts: list[tuple[int, Location]]) -> Chunk:
    if len(parts) == 1:
        return Chunk(pieces[0], parts[0][1], 1)
    return Chunk(b"".join(pieces), parts[0][1], 1, parts=tuple(parts))
