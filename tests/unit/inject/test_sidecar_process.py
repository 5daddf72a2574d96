"""``SidecarProcess``: what ``vaultside sidecar`` lets go of on shutdown, and in which order."""

from __future__ import annotations

from pathlib import Path

from vaultside.inject.sidecar import Sidecar, SidecarConfig
from vaultside.inject.sidecar_process import SidecarProcess
from vaultside.inject.spec import parse_volume_options

from .conftest import MemorySecrets


class Journaled:
    def __init__(self, name: str, journal: list[str]) -> None:
        self.name, self.journal = name, journal

    async def close(self) -> None:
        self.journal.append(f"close {self.name}")


class Session(Journaled):
    async def start(self) -> None: ...

    async def refresh(self) -> None: ...

    def expired(self) -> None: ...


async def test_close_removes_the_ready_file_then_the_session_then_the_connections(
    tmp_path: Path,
) -> None:
    journal: list[str] = []
    ready = tmp_path / "ready"
    ready.write_text("ready\n")
    spec = parse_volume_options({"secret.db": "kv:app/db#password"})
    cfg = SidecarConfig(output_dir=tmp_path, spec=spec, ready_file=ready)
    sidecar = Sidecar(cfg, MemorySecrets(), auth=Session("session", journal))
    process = SidecarProcess(
        sidecar,
        once=False,
        resources=[Journaled("client", journal), Journaled("engine", journal)],
    )
    await process.close()
    await process.close()  # idempotent
    assert not ready.exists()
    assert journal == ["close session", "close client", "close engine"]


async def test_once_keeps_the_ready_file(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.write_text("ready\n")
    spec = parse_volume_options({"secret.db": "kv:app/db#password"})
    cfg = SidecarConfig(output_dir=tmp_path, spec=spec, ready_file=ready)
    await SidecarProcess(Sidecar(cfg, MemorySecrets()), once=True).close()
    assert ready.exists()
