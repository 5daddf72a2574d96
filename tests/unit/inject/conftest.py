"""Small real in-memory implementations used by the inject unit tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vaultside.broker.base import ResolvedSecret
from vaultside.client import NotModified, SecretData
from vaultside.errors import NotFoundError, PermissionDeniedError
from vaultside.inject import tmpfs
from vaultside.inject.admission import ContainerFacts
from vaultside.kv.models import VersionMeta
from vaultside.refs import SecretRef


@dataclass
class MemorySecrets:
    """An in-memory secret store that speaks ``SecretSource`` and the ETag read the sidecar uses."""

    data: dict[str, dict[str, str]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    resolve_calls: int = 0
    reads: int = 0

    def put(self, path: str, **fields: str) -> None:
        self.data[path] = dict(fields)
        self.versions[path] = self.versions.get(path, 0) + 1

    async def resolve(self, ref: SecretRef) -> ResolvedSecret:
        self.resolve_calls += 1
        if ref.path in self.denied:
            raise PermissionDeniedError("permission denied")
        secret = self.data.get(ref.path)
        if secret is None or ref.field not in secret:
            raise NotFoundError(f"secret {ref.path} not found")
        return ResolvedSecret(ref, secret[ref.field], str(self.versions[ref.path]))

    async def read_secret(
        self, path: str, *, version: int | None = None, etag: str | None = None
    ) -> SecretData | NotModified:
        self.reads += 1
        if path not in self.data:
            raise NotFoundError(f"secret {path} not found")
        tag = f'"{self.versions[path]}"'
        if etag == tag:
            return NotModified(tag)
        meta = VersionMeta(self.versions[path], 0.0, None, False)
        return SecretData(path, dict(self.data[path]), meta, tag)


@dataclass
class StaticContainers:
    """A ``ContainerLookup`` answering from a dict of volume name → containers."""

    by_volume: dict[str, list[ContainerFacts]] = field(default_factory=dict)

    async def containers_for_volume(self, volume: str, driver: str) -> list[ContainerFacts]:
        return list(self.by_volume.get(volume, []))


def safe_container(cid: str = "c" * 64, **kw: object) -> ContainerFacts:
    """A container every default rule admits."""
    base: dict[str, object] = {
        "id": cid,
        "name": "app",
        "image": "vaultside-test/busybox:latest",
        "image_id": "sha256:" + "a" * 64,
        "labels": {"io.vaultside.role": "web"},
        "user": "1000:1000",
        "memory_limit": 64 * 1024 * 1024,
        "pids_limit": 100,
        "readonly_rootfs": True,
    }
    base.update(kw)
    return ContainerFacts(**base)  # type: ignore[arg-type]


@pytest.fixture
def mount_root(tmp_path: Path):
    """A directory for tmpfs mounts; anything left mounted is cleaned up."""
    if os.geteuid() != 0:
        pytest.skip("mounting tmpfs needs root")
    root = tmp_path / "mounts"
    root.mkdir()
    yield root
    for child in root.iterdir():
        tmpfs.wipe_and_unmount(child)
