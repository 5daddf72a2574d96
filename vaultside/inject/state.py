"""Plugin state on disk: volumes, their options and where they are mounted — never values.

Persisted so a restarted plugin still knows its volumes and recovers the tmpfs mounts that
survived it (a tmpfs outlives the process that mounted it).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(slots=True)
class VolumeRecord:
    """One volume: its options (references, never values) and its current mount."""

    name: str
    options: dict[str, str]
    created_at: float
    mountpoint: str = ""
    mount_ids: list[str] = field(default_factory=list)


class PluginState:
    """A JSON file (0600), rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.volumes: dict[str, VolumeRecord] = {}

    def load(self) -> None:
        """Read the file if it exists."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        self.volumes = {
            str(v["name"]): VolumeRecord(
                name=str(v["name"]),
                options={str(k): str(x) for k, x in v["options"].items()},
                created_at=float(v["created_at"]),
                mountpoint=str(v.get("mountpoint", "")),
                mount_ids=[str(i) for i in v.get("mount_ids", [])],
            )
            for v in raw.get("volumes", [])
        }

    def save(self) -> None:
        """Write the file atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps({"volumes": [asdict(v) for v in self.volumes.values()]}, indent=1)
        # No fsync: the rename keeps the file whole across a plugin crash, and after a host
        # crash every tmpfs is gone anyway (recovery then forgets the mounts).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
