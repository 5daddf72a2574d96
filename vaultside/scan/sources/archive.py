"""Image archives without a daemon: ``docker save`` tarballs and OCI layouts (tar or directory).

The archive is read once as a stream. Layers (``<id>/layer.tar`` or ``blobs/sha256/<hex>``;
plain, gzip or zstd) are scanned as they pass; small JSON blobs (manifests, configs) are kept.
After the stream ends the image config is scanned (Env, Labels, every history entry's
``created_by``), and ``finalize`` attributes each layer finding to its layer digest, the
history entry that created the layer, and whether a later layer deleted (whiteout) or
overwrote the file. A tar that is not an image is scanned as a plain archive.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

from vaultside.errors import InvalidRequestError
from vaultside.scan.base import Chunk, Finding, Location, ScanStats, Source
from vaultside.scan.sources.bundle import WINDOW, bundled
from vaultside.scan.sources.content import (
    ARCHIVE_ERRORS,
    BLOCK,
    Limits,
    Prefixed,
    archive_kind,
    decompressed,
    file_chunks,
    is_tar,
    read_head,
)
from vaultside.scan.sources.layers import (
    Attribution,
    ImageInfo,
    config_chunks,
    forget_members,
    image_info,
    layer_chunks,
    norm,
)
from vaultside.scan.sources.pycache import Deferred
from vaultside.scan.sources.request import ScanRequest
from vaultside.scan.sources.tarindex import Entry, Section, TarFormatError, Window, entries

_MAX_JSON = 8 * 1024 * 1024
_META_NAMES = frozenset({"manifest.json", "index.json", "oci-layout", "repositories"})
_MIN_SLICE = 1 << 20  # bytes of files per worker slice, at least


def _pread(fd: int, offset: int, n: int) -> bytes:
    return os.pread(fd, n, offset)


class ArchiveError(InvalidRequestError):
    """The archive is corrupt, truncated or not readable as an image."""


class Counting(io.RawIOBase):
    """Counts bytes read from a stream into ``stats.bytes_read`` (for progress)."""

    def __init__(self, raw: IO[bytes] | io.RawIOBase, stats: ScanStats) -> None:
        self._raw = raw
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(b))
        b[: len(data)] = data
        self._stats.bytes_read += len(data)
        return len(data)


@dataclass(frozen=True)
class LayerFiles:
    """A picklable slice of an on-disk archive's layer files, scanned in a worker process."""

    archive: Path
    kind: str
    target: str
    limits: Limits
    items: tuple[tuple[str, str, int, int], ...]  # (layer key, path, data offset, size)

    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        """Chunks of every file in the slice."""
        kind, target = self.kind, self.target

        def files() -> Iterator[tuple[Location, int, int]]:
            for key, path, offset, size in self.items:
                stats.bytes_read += size
                yield Location(kind, target, path, None, key), offset, size

        with self.archive.open("rb") as f:
            try:
                yield from bundled(Window(f.fileno(), WINDOW), files(), stats, self.limits)
            except TarFormatError as exc:
                raise ArchiveError(f"{self.target} is corrupt or truncated ({exc})") from exc

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        """Attribution happens in the parent source's ``finalize``."""
        return findings


class ImageArchiveSource:
    """An image archive stream (file, directory layout, or ``docker save`` over the API)."""

    def __init__(
        self,
        opener: Path | IO[bytes],
        *,
        kind: str = "archive",
        target: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._opener = opener
        self.kind = kind
        self.target = target if target is not None else str(opener)
        self.limits = limits or Limits()
        self._jsons: dict[str, object] = {}
        self._seen = Attribution()
        self._split_layers: set[str] = set()

    # -- reading -------------------------------------------------------------------------
    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        """Layer files as they stream past, then the image configs."""
        if isinstance(self._opener, Path) and self._opener.is_dir():
            yield from self._directory(self._opener, stats)
        else:
            yield from self._stream(stats)
        self._seen.images = images = self._resolve()
        if not images and not self._seen.layers and stats.files == 0:
            stats.warn(f"{self.target}: no image and no files found")
        elif not images and self._seen.layers:
            stats.warn(f"{self.target}: layers without a manifest (truncated?): no attribution")
        for img in images:
            target = img.tags[0] if img.tags and self.kind == "archive" else self.target
            yield from config_chunks(img, self.kind, target)

    def _stream(self, stats: ScanStats) -> Iterator[Chunk]:
        own = isinstance(self._opener, Path)
        try:
            raw: IO[bytes] = (
                open(self._opener, "rb")  # noqa: SIM115 - closed in finally
                if isinstance(self._opener, Path)
                else self._opener
            )
        except OSError as exc:
            raise ArchiveError(f"cannot open {self.target}: {exc.strerror}") from exc
        try:
            if isinstance(self._opener, Path):
                if is_tar(read_head(raw, 512)):
                    raw.seek(0)
                    yield from self._seekable(raw, stats)
                    return
                raw.seek(0)
            counted = io.BufferedReader(Counting(raw, stats), BLOCK)
            head = read_head(counted, 512)
            kind = archive_kind(head)
            stream: IO[bytes] = io.BufferedReader(Prefixed(head, counted), BLOCK)
            if kind in ("gzip", "zstd"):
                stream = decompressed(kind, stream)
                head = read_head(stream, 512)
                stream = io.BufferedReader(Prefixed(head, stream), BLOCK)
            if not is_tar(head):
                raise ArchiveError(f"{self.target} is not a tar archive (docker save or OCI)")
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for member in tf:
                    forget_members(tf)  # keep memory flat on archives with many members
                    if not member.isfile():
                        continue
                    fobj = tf.extractfile(member)
                    if fobj is not None:
                        yield from self._member(norm(member.name), member.size, fobj, stats)
        except ArchiveError:
            raise
        except ARCHIVE_ERRORS as exc:
            raise ArchiveError(
                f"{self.target} is corrupt or truncated ({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            if own:
                raw.close()

    def _seekable(self, raw: IO[bytes], stats: ScanStats) -> Iterator[Chunk]:
        """An uncompressed tar on disk: headers and data read with ``pread`` (the fast path)."""
        fd = raw.fileno()
        size = os.fstat(fd).st_size
        counted = 0  # bytes of this archive already in ``stats.bytes_read``
        try:
            for entry in entries(fd, 0, size):
                if not entry.is_file:
                    continue
                name = norm(entry.name)
                if name in self._split_layers:
                    stats.layers += 1  # its files were scanned (and counted) by ``split`` workers
                    counted = entry.offset + entry.size
                    continue
                stats.bytes_read += entry.offset + entry.size - counted
                counted = entry.offset + entry.size
                if name.endswith("/layer.tar") or (name.startswith("blobs/") and entry.size > 512):
                    head = os.pread(fd, 512, entry.offset)
                    if is_tar(head):
                        yield from self._plain_layer(fd, name, entry, stats)
                        continue
                section = io.BufferedReader(Section(fd, entry.offset, entry.size), BLOCK)
                yield from self._member(name, entry.size, section, stats)
        except TarFormatError as exc:
            raise ArchiveError(f"{self.target} is corrupt or truncated ({exc})") from exc

    def _plain_layer(
        self, fd: int, key: str, layer_entry: Entry, stats: ScanStats
    ) -> Iterator[Chunk]:
        stats.layers += 1
        layer = self._seen.layer(key)
        end = layer_entry.offset + layer_entry.size
        kind, target = self.kind, self.target
        window = Window(fd, WINDOW)

        def files() -> Iterator[tuple[Location, int, int]]:
            pyc = Deferred()
            for entry in entries(fd, layer_entry.offset, end, window):
                path = norm(entry.name)
                if layer.note(path, entry.is_file) and not pyc.hold(path, entry.offset, entry.size):
                    yield Location(kind, target, path, None, key), entry.offset, entry.size
            for path, offset, size in pyc.release(window.read):
                yield Location(kind, target, path, None, key), offset, size

        yield from bundled(window, files(), stats, self.limits)

    def size_hint(self) -> int | None:
        """Bytes of the archive file (or of every file of a layout directory)."""
        path = self._opener
        if not isinstance(path, Path):
            return None
        try:
            if path.is_dir():
                return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            return path.stat().st_size
        except OSError:
            return None

    def split(self, parts: int) -> Iterator[LayerFiles]:
        """The plain layers' files, cut into slices of about 1/``parts`` of the archive.

        A generator: slices come while the layers' headers are still being read, so workers
        scan the first slices while this process indexes the rest. Each layer it has indexed
        completely (files, whiteouts) is skipped by ``chunks`` afterwards; yields nothing (and
        changes nothing) unless this is an uncompressed tar on disk. A layer whose headers are
        corrupt is left to ``chunks``, which reports it.
        """
        path = self._opener
        if parts < 2 or not isinstance(path, Path) or not path.is_file():
            return
        try:
            f = path.open("rb")
        except OSError:
            return  # the sequential path reports the problem
        with f:
            fd = f.fileno()
            size = os.fstat(fd).st_size
            target = max(_MIN_SLICE, size // parts)  # contiguous slices: reads stay sequential
            items: list[tuple[str, str, int, int]] = []
            used = 0
            try:
                if not is_tar(os.pread(fd, 512, 0)):
                    return
                for outer in entries(fd, 0, size):
                    name = norm(outer.name)
                    if not outer.is_file or not (
                        name.endswith("/layer.tar") or name.startswith("blobs/")
                    ):
                        continue
                    if outer.size <= 512 or not is_tar(os.pread(fd, 512, outer.offset)):
                        continue
                    layer = self._seen.layer(name)
                    pyc = Deferred()
                    # headers only, one exact ``pread`` each: a window would copy every
                    # file's data as well (this process never reads the data)
                    headers = Window(fd, 0)
                    for entry in entries(fd, outer.offset, outer.offset + outer.size, headers):
                        p = norm(entry.name)
                        if layer.note(p, entry.is_file) and not pyc.hold(
                            p, entry.offset, entry.size
                        ):
                            items.append((name, p, entry.offset, entry.size))
                            used += entry.size
                            # near the end, slices shrink (1/8 of what is left): every
                            # process then finishes at about the same time
                            if used >= min(target, max(_MIN_SLICE, (size - entry.offset) >> 3)):
                                yield self._slice(path, items)
                                items, used = [], 0
                    for p, offset, length in pyc.release(partial(_pread, fd)):
                        items.append((name, p, offset, length))
                        used += length
                    self._split_layers.add(name)
            except (OSError, TarFormatError):
                pass  # not split: ``chunks`` reads (and reports) it
            if items:
                yield self._slice(path, items)

    def _slice(self, path: Path, items: list[tuple[str, str, int, int]]) -> LayerFiles:
        return LayerFiles(path, self.kind, self.target, self.limits, tuple(items))

    def _directory(self, root: Path, stats: ScanStats) -> Iterator[Chunk]:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            name = path.relative_to(root).as_posix()
            try:
                with path.open("rb") as fobj:
                    yield from self._member(name, path.stat().st_size, fobj, stats)
            except ARCHIVE_ERRORS as exc:
                raise ArchiveError(
                    f"{self.target}: {name} is corrupt or truncated ({type(exc).__name__})"
                ) from exc

    def _member(self, name: str, size: int, fobj: IO[bytes], stats: ScanStats) -> Iterator[Chunk]:
        base = name.rpartition("/")[2]
        is_blob = name.startswith("blobs/")
        if name.endswith("/layer.tar") or (is_blob and size > _MAX_JSON):
            yield from self._layer(name, fobj, stats)
            return
        if (
            name in _META_NAMES
            or is_blob
            or (name.endswith(".json") and "/" not in name)
            or base in ("json", "VERSION")
        ):
            head = read_head(fobj, 512)
            if head.lstrip()[:1] in (b"{", b"[") and size <= _MAX_JSON:
                try:
                    self._jsons[name] = json.loads(head + fobj.read())
                except ValueError:
                    stats.warn(f"{self.target}: {name} is not valid JSON")
                return
            if is_blob and (archive_kind(head) is not None):
                yield from self._layer(name, io.BufferedReader(Prefixed(head, fobj), BLOCK), stats)
                return
            if name in _META_NAMES or base in ("json", "VERSION"):
                return
            fobj = io.BufferedReader(Prefixed(head, fobj), BLOCK)
        # not part of an image: a plain archive member
        loc = Location(kind=self.kind, target=self.target, path=name)
        yield from file_chunks(fobj, loc, stats, self.limits)

    def _layer(self, key: str, fobj: IO[bytes], stats: ScanStats) -> Iterator[Chunk]:
        loc = Location(kind=self.kind, target=self.target, path="", layer=key)
        yield from layer_chunks(fobj, key, self._seen.layer(key), loc, stats, self.limits)

    # -- making sense of it ------------------------------------------------------------------
    def _blob(self, digest: str) -> object:
        algo, _, hexd = digest.partition(":")
        return self._jsons.get(f"blobs/{algo}/{hexd}")

    def _resolve(self) -> list[ImageInfo]:
        images: list[ImageInfo] = []
        index = self._jsons.get("index.json")
        manifest = self._jsons.get("manifest.json")
        if isinstance(manifest, list):  # docker save
            for entry in manifest:
                if not isinstance(entry, dict):
                    continue
                cfg_name = norm(str(entry.get("Config", "")))
                cfg = self._jsons.get(cfg_name)
                keys = [norm(str(x)) for x in entry.get("Layers", [])]
                images.append(image_info(cfg, keys, None, list(entry.get("RepoTags") or [])))
        elif isinstance(index, dict):  # OCI layout
            for desc in index.get("manifests", []):
                man = self._blob(str(desc.get("digest", ""))) if isinstance(desc, dict) else None
                if isinstance(man, dict) and "manifests" in man:  # a nested index
                    descs = [d for d in man["manifests"] if isinstance(d, dict)]
                    man = self._blob(str(descs[0].get("digest", ""))) if descs else None
                if not isinstance(man, dict):
                    continue
                cfg = self._blob(str(man.get("config", {}).get("digest", "")))
                digests = [str(lay.get("digest", "")) for lay in man.get("layers", [])]
                keys = ["blobs/" + d.replace(":", "/", 1) for d in digests]
                tag = desc.get("annotations", {}).get("org.opencontainers.image.ref.name")
                images.append(image_info(cfg, keys, digests, [tag] if tag else []))
        return images

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        """Attribute layer findings to digest and ``created_by``; mark deleted/overwritten."""
        return self._seen.finalize(findings, retarget=self.kind == "archive")


def archive_sources(request: ScanRequest) -> list[Source]:
    """One source per image archive (docker save tarball, OCI layout) in ``request.targets``."""
    return [ImageArchiveSource(Path(t), limits=request.limits) for t in request.targets]
