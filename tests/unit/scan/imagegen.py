"""Build image archives in tests with ``tarfile``: ``docker save`` (legacy) and OCI layouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

# A layer: path -> content, or None for a whiteout (".wh.<name>") of that path.
LayerSpec = dict[str, bytes | None]


@dataclass
class ImageSpec:
    """Layers (with the Dockerfile instruction that made each) and config."""

    layers: list[tuple[str, LayerSpec]]
    env: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    extra_history: list[str] = field(default_factory=list)  # empty_layer entries (ENV, ARG...)
    tag: str = "test/app:1"


def tar_bytes(files: dict[str, bytes | None]) -> bytes:
    """An uncompressed tar of ``files`` (None → a whiteout entry)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for path, content in files.items():
            if content is None:
                d, _, base = path.rpartition("/")
                name = f"{d}/.wh.{base}" if d else f".wh.{base}"
                content = b""
            else:
                name = path
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = int(time.time())
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip (also a jar or wheel) of ``files``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def compress(data: bytes, how: str) -> bytes:
    """``none``, ``gzip`` or ``zstd``."""
    if how == "gzip":
        return gzip.compress(data)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _config(spec: ImageSpec, diff_ids: list[str]) -> bytes:
    history = [{"created_by": h, "empty_layer": True} for h in spec.extra_history]
    history += [{"created_by": cb} for cb, _ in spec.layers]
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": spec.env, "Labels": spec.labels, "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }
    ).encode()


def docker_save(spec: ImageSpec, path: Path) -> list[str]:
    """Write a legacy ``docker save`` tarball; returns the layers' diff ids."""
    layer_tars = [tar_bytes(files) for _, files in spec.layers]
    diff_ids = [_sha(t) for t in layer_tars]
    config = _config(spec, diff_ids)
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{hashlib.sha256(t).hexdigest()[:16]}{i}/layer.tar" for i, t in enumerate(layer_tars)]
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [spec.tag], "Layers": names}]).encode()
    with tarfile.open(path, "w") as out:
        for name, data in [
            *zip(names, layer_tars, strict=True),
            (cfg_name, config),
            ("manifest.json", manifest),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return diff_ids


def oci_layout(
    spec: ImageSpec, dest: Path, *, compression: str = "gzip", as_tar: bool = True
) -> list[str]:
    """Write an OCI image layout (a tar at ``dest``, or a directory); returns layer digests."""
    blobs: dict[str, bytes] = {}
    layer_tars = [tar_bytes(files) for _, files in spec.layers]
    diff_ids = [_sha(t) for t in layer_tars]
    layers = []
    media = {"gzip": "+gzip", "zstd": "+zstd", "none": ""}[compression]
    for t in layer_tars:
        blob = compress(t, compression)
        blobs[_sha(blob)] = blob
        layers.append(
            {
                "mediaType": f"application/vnd.oci.image.layer.v1.tar{media}",
                "digest": _sha(blob),
                "size": len(blob),
            }
        )
    config = _config(spec, diff_ids)
    blobs[_sha(config)] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _sha(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    blobs[_sha(manifest)] = manifest
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _sha(manifest),
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": spec.tag},
                }
            ],
        }
    ).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index}
    files.update({"blobs/sha256/" + d.split(":")[1]: b for d, b in blobs.items()})
    if as_tar:
        with tarfile.open(dest, "w") as out:
            for name, data in sorted(files.items()):  # blobs before index.json
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    else:
        for name, data in files.items():
            p = dest / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    return [str(layer["digest"]) for layer in layers]
