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
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from vaultside.errors import InvalidRequestError
from vaultside.scan.base import Chunk, Finding, Location, ScanStats
from vaultside.scan.sources.content import (
    ARCHIVE_ERRORS,
    BLOCK,
    Limits,
    Prefixed,
    archive_kind,
    bytes_chunks,
    decompressed,
    file_chunks,
    is_tar,
    read_head,
)
from vaultside.scan.sources.tarindex import Entry, Section, TarFormatError, entries

_MAX_JSON = 8 * 1024 * 1024
_INLINE = BLOCK  # layer files up to this size are read with one pread
_META_NAMES = frozenset({"manifest.json", "index.json", "oci-layout", "repositories"})
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


class ArchiveError(InvalidRequestError):
    """The archive is corrupt, truncated or not readable as an image."""


@dataclass
class _Layer:
    files: set[str] = field(default_factory=set)
    whiteouts: set[str] = field(default_factory=set)
    opaque: set[str] = field(default_factory=set)


@dataclass
class _ImageInfo:
    layer_keys: list[str]
    digests: list[str]
    created_by: list[str | None]
    tags: list[str]
    config: dict[str, Any]


class Counting(io.RawIOBase):
    """Counts bytes read from a stream into ``stats.bytes_read`` (for progress)."""

    def __init__(self, raw: IO[bytes], stats: ScanStats) -> None:
        self._raw = raw
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(b))
        b[: len(data)] = data
        self._stats.bytes_read += len(data)
        return len(data)


def _forget_members(tf: tarfile.TarFile) -> None:
    """Drop the TarInfo list tarfile keeps growing while iterating (iteration does not need it)."""
    tf.members = []  # type: ignore[attr-defined]


def _can_seek(f: IO[bytes]) -> bool:
    """True for a member of an archive opened with random access (not a stream)."""
    try:
        return f.seekable()
    except AttributeError:  # tarfile's stream objects do not even say no
        return False


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name.lstrip("./")).lstrip("/")


def _file_at(
    fd: int, offset: int, size: int, loc: Location, stats: ScanStats, limits: Limits
) -> Iterator[Chunk]:
    """Chunks of the file stored at ``[offset, offset + size)`` of ``fd``."""
    if size <= _INLINE:
        data = os.pread(fd, size, offset)
        if len(data) < size:
            raise TarFormatError("unexpected end of data")
        yield from bytes_chunks(data, loc, stats, limits)
    else:
        yield from file_chunks(
            io.BufferedReader(Section(fd, offset, size), BLOCK), loc, stats, limits
        )


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
        with self.archive.open("rb") as f:
            for key, path, offset, size in self.items:
                stats.bytes_read += size
                loc = Location(kind=self.kind, target=self.target, path=path, layer=key)
                try:
                    yield from _file_at(f.fileno(), offset, size, loc, stats, self.limits)
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
        self._layers: dict[str, _Layer] = {}
        self._images: list[_ImageInfo] = []
        self._split_layers: set[str] = set()

    # -- reading -------------------------------------------------------------------------
    def chunks(self, stats: ScanStats) -> Iterator[Chunk]:
        """Layer files as they stream past, then the image configs."""
        if isinstance(self._opener, Path) and self._opener.is_dir():
            yield from self._directory(self._opener, stats)
        else:
            yield from self._stream(stats)
        self._images = self._resolve()
        if not self._images and not self._layers and stats.files == 0:
            stats.warn(f"{self.target}: no image and no files found")
        elif not self._images and self._layers:
            stats.warn(f"{self.target}: layers without a manifest (truncated?): no attribution")
        for img in self._images:
            yield from self._config_chunks(img)

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
                stats.bytes_total = self._opener.stat().st_size
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
                    _forget_members(tf)  # keep memory flat on archives with many members
                    if not member.isfile():
                        continue
                    fobj = tf.extractfile(member)
                    if fobj is not None:
                        yield from self._member(_norm(member.name), member.size, fobj, stats)
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
        try:
            for entry in entries(fd, 0, size):
                stats.bytes_read = entry.offset + entry.size
                if not entry.is_file:
                    continue
                name = _norm(entry.name)
                if name in self._split_layers:
                    stats.layers += 1  # its files were scanned by ``split`` workers
                    continue
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
        layer = self._layers.setdefault(key, _Layer())
        end = layer_entry.offset + layer_entry.size
        for entry in entries(fd, layer_entry.offset, end):
            path = _norm(entry.name)
            base = posixpath.basename(path)
            if base == _OPAQUE:
                layer.opaque.add(posixpath.dirname(path))
                continue
            if base.startswith(_WHITEOUT):
                layer.whiteouts.add(posixpath.join(posixpath.dirname(path), base[4:]))
                continue
            if not entry.is_file:
                continue
            layer.files.add(path)
            loc = Location(kind=self.kind, target=self.target, path=path, layer=key)
            yield from _file_at(fd, entry.offset, entry.size, loc, stats, self.limits)

    def split(self, parts: int) -> list[LayerFiles]:
        """The plain layers' files cut into ``parts`` slices for parallel workers.

        Indexes those layers (files, whiteouts) here, so ``chunks`` then skips them; returns
        [] (and changes nothing) unless this is an uncompressed tar on disk.
        """
        path = self._opener
        if parts < 2 or not isinstance(path, Path) or not path.is_file():
            return []
        items: list[tuple[str, str, int, int]] = []
        layers: dict[str, _Layer] = {}
        try:
            with path.open("rb") as f:
                fd = f.fileno()
                if not is_tar(os.pread(fd, 512, 0)):
                    return []
                for outer in entries(fd, 0, os.fstat(fd).st_size):
                    name = _norm(outer.name)
                    if not outer.is_file or not (
                        name.endswith("/layer.tar") or name.startswith("blobs/")
                    ):
                        continue
                    if outer.size <= 512 or not is_tar(os.pread(fd, 512, outer.offset)):
                        continue
                    layer = layers.setdefault(name, _Layer())
                    for entry in entries(fd, outer.offset, outer.offset + outer.size):
                        p = _norm(entry.name)
                        base = posixpath.basename(p)
                        if base == _OPAQUE:
                            layer.opaque.add(posixpath.dirname(p))
                        elif base.startswith(_WHITEOUT):
                            layer.whiteouts.add(posixpath.join(posixpath.dirname(p), base[4:]))
                        elif entry.is_file:
                            layer.files.add(p)
                            items.append((name, p, entry.offset, entry.size))
        except (OSError, TarFormatError):
            return []  # the sequential path reports the problem
        self._layers.update(layers)
        self._split_layers = set(layers)
        total = sum(i[3] for i in items) or 1
        slices: list[list[tuple[str, str, int, int]]] = [[] for _ in range(parts)]
        done = 0
        for item in items:  # contiguous slices of about equal bytes: reads stay sequential
            slices[min(parts - 1, done * parts // total)].append(item)
            done += item[3]
        return [
            LayerFiles(path, self.kind, self.target, self.limits, tuple(sl)) for sl in slices if sl
        ]

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
        base = posixpath.basename(name)
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
        stats.layers += 1
        layer = self._layers.setdefault(key, _Layer())
        head = read_head(fobj, 512)
        kind = archive_kind(head)
        if kind == "tar" and _can_seek(fobj):
            fobj.seek(0)
            with tarfile.open(fileobj=fobj, mode="r:") as tf:
                yield from self._layer_members(tf, key, layer, stats)
            return
        stream: IO[bytes] = io.BufferedReader(Prefixed(head, fobj), BLOCK)
        if kind in ("gzip", "zstd"):
            stream = decompressed(kind, stream)
        elif kind != "tar" and head.strip(b"\0"):
            stats.warn(f"{self.target}: layer {key} is not a tar stream")
            return
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            yield from self._layer_members(tf, key, layer, stats)
        # Drain what tarfile left unread (end-of-archive padding) so the outer stream stays aligned.
        while stream.read(BLOCK):
            pass

    def _layer_members(
        self, tf: tarfile.TarFile, key: str, layer: _Layer, stats: ScanStats
    ) -> Iterator[Chunk]:
        for member in tf:
            _forget_members(tf)  # keep memory flat on layers with many files
            path = _norm(member.name)
            base = posixpath.basename(path)
            if base == _OPAQUE:
                layer.opaque.add(posixpath.dirname(path))
                continue
            if base.startswith(_WHITEOUT):
                layer.whiteouts.add(posixpath.join(posixpath.dirname(path), base[4:]))
                continue
            if not member.isfile():
                continue
            layer.files.add(path)
            fobj = tf.extractfile(member)
            if fobj is None:
                continue
            loc = Location(kind=self.kind, target=self.target, path=path, layer=key)
            yield from file_chunks(fobj, loc, stats, self.limits)

    # -- making sense of it ------------------------------------------------------------------
    def _blob(self, digest: str) -> object:
        algo, _, hexd = digest.partition(":")
        return self._jsons.get(f"blobs/{algo}/{hexd}")

    def _resolve(self) -> list[_ImageInfo]:
        images: list[_ImageInfo] = []
        index = self._jsons.get("index.json")
        manifest = self._jsons.get("manifest.json")
        if isinstance(manifest, list):  # docker save
            for entry in manifest:
                if not isinstance(entry, dict):
                    continue
                cfg_name = _norm(str(entry.get("Config", "")))
                cfg = self._jsons.get(cfg_name)
                keys = [_norm(str(x)) for x in entry.get("Layers", [])]
                images.append(self._image(cfg, keys, None, list(entry.get("RepoTags") or [])))
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
                images.append(self._image(cfg, keys, digests, [tag] if tag else []))
        return images

    def _image(
        self, cfg: object, keys: list[str], digests: list[str] | None, tags: list[str]
    ) -> _ImageInfo:
        cfg = cfg if isinstance(cfg, dict) else {}
        diff_ids = list(cfg.get("rootfs", {}).get("diff_ids", []))
        if digests is None:
            digests = [str(diff_ids[i]) if i < len(diff_ids) else k for i, k in enumerate(keys)]
        layer_history = [
            h.get("created_by") for h in cfg.get("history", []) if not h.get("empty_layer")
        ]
        created = [layer_history[i] if i < len(layer_history) else None for i in range(len(keys))]
        return _ImageInfo(keys, digests, created, tags, cfg)

    def _config_chunks(self, img: _ImageInfo) -> Iterator[Chunk]:
        cfg = img.config
        target = img.tags[0] if img.tags and self.kind == "archive" else self.target
        conf = cfg.get("config") or {}
        env = "\n".join(str(e) for e in conf.get("Env") or []).encode()
        if env:
            yield Chunk(env + b"\n", Location(self.kind, target, "config/Env"))
        labels = "\n".join(f"{k}={v}" for k, v in (conf.get("Labels") or {}).items()).encode()
        if labels:
            yield Chunk(labels + b"\n", Location(self.kind, target, "config/Labels"))
        for i, h in enumerate(cfg.get("history") or []):
            created_by = str(h.get("created_by", ""))
            if created_by:
                loc = Location(self.kind, target, "config/history", i + 1, created_by=created_by)
                yield Chunk(created_by.encode() + b"\n", loc, i + 1)

    def finalize(self, findings: list[Finding]) -> list[Finding]:
        """Attribute layer findings to digest and ``created_by``; mark deleted/overwritten."""
        where: dict[str, tuple[_ImageInfo, int]] = {}
        for img in self._images:
            for i, key in enumerate(img.layer_keys):
                where.setdefault(key, (img, i))
        out: list[Finding] = []
        for f in findings:
            lkey = f.location.layer
            if lkey is None or lkey not in where:
                out.append(f)
                continue
            img, i = where[lkey]
            status = self._later_status(img, i, f.location.path)
            target = img.tags[0] if img.tags and self.kind == "archive" else f.location.target
            loc = replace(
                f.location,
                target=target,
                layer=img.digests[i],
                created_by=img.created_by[i],
                status=status,
            )
            out.append(replace(f, location=loc))
        return out

    def _later_status(self, img: _ImageInfo, i: int, path: str) -> str | None:
        parents = [path]
        d = posixpath.dirname(path)
        while d:
            parents.append(d)
            d = posixpath.dirname(d)
        for key in img.layer_keys[i + 1 :]:
            later = self._layers.get(key)
            if later is None:
                continue
            if any(p in later.whiteouts for p in parents) or any(
                p in later.opaque for p in parents[1:]
            ):
                return "deleted"
            if path in later.files:
                return "overwritten"
        return None
