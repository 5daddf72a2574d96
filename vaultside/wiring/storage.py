"""Storage kinds: ``settings.storage.kind`` → the backend (ciphertext only ever reaches it).

``STORAGE_KINDS`` is the registry: ``vaultside serve`` (``build_storage``) and
``vaultside operator migrate-storage`` both build backends through it.
"""

from __future__ import annotations

from collections.abc import Callable

from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.registry import lookup
from vaultside.storage.base import StorageBackend

StorageFactory = Callable[[Settings], StorageBackend]


def postgres_dsn(settings: Settings) -> str:
    """The PostgreSQL DSN from ``storage.postgres_dsn`` or the file ``postgres_dsn_file``."""
    cfg = settings.storage
    if cfg.postgres_dsn_file is not None:
        return settings.resolve(cfg.postgres_dsn_file).read_text().strip()
    if cfg.postgres_dsn is not None:
        return cfg.postgres_dsn.get_secret_value()
    raise InvalidRequestError("storage.kind is postgres but no postgres_dsn(_file) is set")


def _sqlite(settings: Settings) -> StorageBackend:
    from vaultside.storage.sqlite import SqliteStorage

    return SqliteStorage(settings.resolve(settings.storage.path))


def _postgres(settings: Settings) -> StorageBackend:
    from vaultside.storage.postgres import PostgresStorage  # asyncpg: only when used

    cfg = settings.storage
    return PostgresStorage(
        postgres_dsn(settings), pool_min=cfg.postgres_pool_min, pool_max=cfg.postgres_pool_max
    )


STORAGE_KINDS: dict[str, StorageFactory] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


def build_storage(settings: Settings) -> StorageBackend:
    """The configured storage backend (ciphertext only ever reaches it)."""
    return lookup(STORAGE_KINDS, settings.storage.kind, "storage.kind")(settings)
