"""Shared building blocks for tests over the encrypted store: key files, keyed settings, and
an opened, unsealed barrier.

Tests used to write these by hand (``init_key_file`` then ``Barrier(...)``, ``open``,
``unseal``); they call these instead. The fixtures in ``tests/conftest.py`` (``key_file``,
``barrier``) are built from them. The root key is random per call, never a literal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaultside.clock import Clock
from vaultside.config.settings import Settings
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.seal import FileSeal, init_key_file
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.service import RotationService
from vaultside.storage.base import StorageBackend
from vaultside.wiring.keyspace import view
from vaultside.wiring.rotation import target_factory

# The SQLite file name the ``barrier`` fixture stores under ``tmp_path``.
BARRIER_DB = "vs.db"


def new_key_file(path: Path) -> Path:
    """A fresh random root key file at ``path`` (which must not exist); returns ``path``."""
    init_key_file(path)
    return path


def with_key(settings: Settings) -> Settings:
    """``settings``, after creating its seal's key file if it does not exist yet."""
    key = settings.resolve(settings.seal.key_file)
    if not key.exists():
        init_key_file(key)
    return settings


def keyed_settings(data_dir: Path, **settings: Any) -> Settings:
    """``Settings(data_dir=..., **settings)`` whose seal key file exists (created if missing)."""
    return with_key(Settings(data_dir=data_dir, **settings))


async def open_barrier(
    storage: StorageBackend,
    key_file: Path,
    *,
    clock: Clock | None = None,
    open_storage: bool = True,
) -> Barrier:
    """A ``Barrier`` over ``storage`` sealed by ``key_file``, opened and unsealed.

    ``open_storage=False`` is for a storage the caller has already opened (shared ones).
    """
    barrier = Barrier(storage, FileSeal(key_file), clock=clock)
    if open_storage:
        await barrier.open()
    await barrier.unseal()
    return barrier


def rotation_service(
    kv: KVStore, barrier: Barrier, clock: Clock, authority: RotationAuthority
) -> RotationService:
    """A ``RotationService`` as wiring builds it (its view of the barrier, the registered
    target kinds), with the scheduler off: tests and benches drive ``scheduler.tick``."""
    return RotationService(
        kv,
        view(barrier, "rotation"),
        target_factory(clock),
        authority=authority,
        clock=clock,
        schedule=False,
    )
