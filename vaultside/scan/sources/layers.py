"""What every image source shares: layer streams, whiteouts, the config, and attribution.

An image is layers (tar streams, plain, gzip or zstd) plus a config JSON. Whichever way the
bytes arrive (``docker save`` archive, OCI layout, the engine API, a registry), a source:

- hands each layer stream to ``layer_chunks`` (read once, in order; never written to disk),
  which records the layer's files and whiteouts in a ``LayerIndex``;
- builds an ``ImageInfo`` per image with ``image_info`` and yields ``config_chunks``;
- calls ``Attribution.finalize``: each layer finding gets its layer digest, the history
  entry that created the layer, and whether a later layer deleted or overwrote the file.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

from vaultside.scan.base import Chunk, Finding, Location, ScanStats
from vaultside.scan.sources.content import (
    BLOCK,
    Limits,
    Prefixed,
    archive_kind,
    decompressed,
    file_chunks,
    read_head,
)

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def norm(name: str) -> str:
    """A member name as a relative posix path (``./a/../b`` -> ``b``)."""
    if "/." not in name and "//" not in name and name[:1] not in "/." and name[-1:] != "/":
        return name  # already normal (most names in a layer): skip normpath
    while name.startswith("./"):
        name = name[2:]
    # "/" + name: ".." cannot climb out; leading dots of a name (".env", ".wh.x") are kept
    return posixpath.normpath("/" + name).lstrip("/")


def forget_members(tf: tarfile.TarFile) -> None:
    """Drop the TarInfo list tarfile keeps growing while iterating (iteration does not need it)."""
    tf.members = []  # type: ignore[attr-defined]


def can_seek(f: IO[bytes]) -> bool:
    """True for a member of an archive opened with random access (not a stream)."""
    try:
        return f.seekable()
    except AttributeError:  # tarfile's stream objects do not even say no
        return False


@dataclass
class LayerIndex:
    """The files one layer adds and the paths it deletes (whiteouts, opaque directories)."""

    files: set[str] = field(default_factory=set)
    whiteouts: set[str] = field(default_factory=set)
    opaque: set[str] = field(default_factory=set)

    def note(self, path: str, is_file: bool) -> bool:
        """Record ``path``; True if it is a regular file whose content should be scanned."""
        base = path.rpartition("/")[2]
        if base == OPAQUE:
            self.opaque.add(posixpath.dirname(path))
            return False
        if base.startswith(WHITEOUT):
            self.whiteouts.add(posixpath.join(posixpath.dirname(path), base[len(WHITEOUT) :]))
            return False
        if not is_file:
            return False
        self.files.add(path)
        return True


@dataclass
class ImageInfo:
    """One image: its layers (keys as the source names them, digests to report), history, config."""

    layer_keys: list[str]
    digests: list[str]
    created_by: list[str | None]
    tags: list[str]
    config: dict[str, Any]


def image_info(
    cfg: object, keys: list[str], digests: list[str] | None, tags: list[str]
) -> ImageInfo:
    """An ``ImageInfo`` from a config blob; ``digests`` default to the config's diff ids."""
    conf = cfg if isinstance(cfg, dict) else {}
    diff_ids = list(conf.get("rootfs", {}).get("diff_ids", []))
    if digests is None:
        digests = [str(diff_ids[i]) if i < len(diff_ids) else k for i, k in enumerate(keys)]
    layer_history = [
        h.get("created_by") for h in conf.get("history", []) if not h.get("empty_layer")
    ]
    created = [layer_history[i] if i < len(layer_history) else None for i in range(len(keys))]
    return ImageInfo(keys, digests, created, tags, conf)


def config_chunks(img: ImageInfo, kind: str, target: str) -> Iterator[Chunk]:
    """The config's Env, Labels and every history entry's ``created_by``."""
    cfg = img.config
    conf = cfg.get("config") or {}
    env = "\n".join(str(e) for e in conf.get("Env") or []).encode()
    if env:
        yield Chunk(env + b"\n", Location(kind, target, "config/Env"))
    labels = "\n".join(f"{k}={v}" for k, v in (conf.get("Labels") or {}).items()).encode()
    if labels:
        yield Chunk(labels + b"\n", Location(kind, target, "config/Labels"))
    for i, h in enumerate(cfg.get("history") or []):
        created_by = str(h.get("created_by", ""))
        if created_by:
            loc = Location(kind, target, "config/history", i + 1, created_by=created_by)
            yield Chunk(created_by.encode() + b"\n", loc, i + 1)


def layer_chunks(
    fobj: IO[bytes],
    key: str,
    layer: LayerIndex,
    loc: Location,
    stats: ScanStats,
    limits: Limits,
) -> Iterator[Chunk]:
    """Chunks of every file of one layer stream (tar, gzip or zstd), read once in order.

    ``loc`` is the template location (kind, target); each file's path and ``layer=key`` are
    filled in. Compression and tar errors propagate (callers translate them).
    """
    stats.layers += 1
    head = read_head(fobj, 512)
    kind = archive_kind(head)
    if kind == "tar" and can_seek(fobj):
        fobj.seek(0)
        with tarfile.open(fileobj=fobj, mode="r:") as tf:
            yield from _members(tf, key, layer, loc, stats, limits)
        return
    stream: IO[bytes] = io.BufferedReader(Prefixed(head, fobj), BLOCK)
    if kind in ("gzip", "zstd"):
        stream = decompressed(kind, stream)
    elif kind != "tar" and head.strip(b"\0"):
        stats.warn(f"{loc.target}: layer {key} is not a tar stream")
        return
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        yield from _members(tf, key, layer, loc, stats, limits)
    # Drain what tarfile left unread (end-of-archive padding) so the outer stream stays aligned.
    while stream.read(BLOCK):
        pass


def _members(
    tf: tarfile.TarFile,
    key: str,
    layer: LayerIndex,
    loc: Location,
    stats: ScanStats,
    limits: Limits,
) -> Iterator[Chunk]:
    for member in tf:
        forget_members(tf)  # keep memory flat on layers with many files
        path = norm(member.name)
        if not layer.note(path, member.isfile()):
            continue
        fobj = tf.extractfile(member)
        if fobj is None:
            continue
        yield from file_chunks(fobj, replace(loc, path=path, layer=key), stats, limits)


@dataclass
class Attribution:
    """Layer indexes and images seen by one source; ``finalize`` attributes its findings."""

    layers: dict[str, LayerIndex] = field(default_factory=dict)
    images: list[ImageInfo] = field(default_factory=list)

    def layer(self, key: str) -> LayerIndex:
        """The index of layer ``key`` (created on first use)."""
        return self.layers.setdefault(key, LayerIndex())

    def finalize(self, findings: list[Finding], *, retarget: bool = False) -> list[Finding]:
        """Attribute layer findings to digest and ``created_by``; mark deleted/overwritten.

        ``retarget``: report an image's first tag as the target (archives holding images).
        """
        where: dict[str, tuple[ImageInfo, int]] = {}
        for img in self.images:
            for i, key in enumerate(img.layer_keys):
                where.setdefault(key, (img, i))
        out: list[Finding] = []
        for f in findings:
            lkey = f.location.layer
            if lkey is None or lkey not in where:
                out.append(f)
                continue
            img, i = where[lkey]
            target = img.tags[0] if img.tags and retarget else f.location.target
            loc = replace(
                f.location,
                target=target,
                layer=img.digests[i],
                created_by=img.created_by[i],
                status=self._later_status(img, i, f.location.path),
            )
            out.append(replace(f, location=loc))
        return out

    def _later_status(self, img: ImageInfo, i: int, path: str) -> str | None:
        parents = [path]
        d = posixpath.dirname(path)
        while d:
            parents.append(d)
            d = posixpath.dirname(d)
        for key in img.layer_keys[i + 1 :]:
            later = self.layers.get(key)
            if later is None:
                continue
            if any(p in later.whiteouts for p in parents) or any(
                p in later.opaque for p in parents[1:]
            ):
                return "deleted"
            if path in later.files:
                return "overwritten"
        return None
