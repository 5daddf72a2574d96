"""A directory tree (or a single file) on the local filesystem."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from vaultside.errors import InvalidRequestError
from vaultside.scan.base import Chunk, Finding, Location, ScanStats, Source
from vaultside.scan.sources.content import (
    ARCHIVE_ERRORS,
    BLOCK,
    Limits,
    bytes_chunks,
    file_chunks,
)
from vaultside.scan.sources.request import ScanRequest

_SKIP_DIRS = frozenset({".git", ".hg", ".svn"})


class PathSource:
    """Every regular file under ``root`` (symlinks are not followed), archives included."""

    def __init__(self, root: Path, *, limits: Limits | None = None) -> None:
        self.root = root
        self.limits = limits or Limits()

    def _files(self) -> Iterator[Path]:
        if self.root.is_file():
            yield self.root
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in sorted(filenames):
                p = Path(dirpath, name)
                if p.is_file() and not p.is_symlink():
                    yield p

    def size_hint(self) -> int | None:
        """Bytes of every file that will be read (a stat per file, no reads)."""
        try:
            return sum(p.stat().st_size for p in self._files())
        except OSError:
            return None

    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        """Chunks of every file, in a stable order."""
        if not self.root.exists():
            raise InvalidRequestError(f"{self.root} does not exist")
        for p in self._files():
            rel = p.name if p == self.root else p.relative_to(self.root).as_posix()
            loc = Location(kind="path", target=str(self.root), path=rel)
            try:
                with p.open("rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    stats.bytes_read += size
                    if size <= BLOCK:
                        yield from bytes_chunks(f.read(), loc, stats, self.limits)
                    else:
                        yield from file_chunks(f, loc, stats, self.limits)
            except PermissionError:
                stats.warn(f"{p}: permission denied, skipped")
            except ARCHIVE_ERRORS as exc:
                stats.warn(f"{p}: unreadable ({type(exc).__name__}), skipped")

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        """Nothing to fix up for plain files."""
        return findings


def path_sources(request: ScanRequest) -> list[Source]:
    """One source per directory (or file) named in ``request.targets``."""
    return [PathSource(Path(t), limits=request.limits) for t in request.targets]
