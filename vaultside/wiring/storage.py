"""Storage kinds: ``settings.storage.kind`` → the backend (ciphertext only ever reaches it)."""

from __future__ import annotations

from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.storage.base import StorageBackend
from vaultside.storage.sqlite import SqliteStorage


def build_storage(settings: Settings) -> StorageBackend:
    """The configured storage backend (ciphertext only ever reaches it)."""
    cfg = settings.storage
    if cfg.kind == "postgres":
        from vaultside.storage.postgres import PostgresStorage

        return PostgresStorage(
            postgres_dsn(settings), pool_min=cfg.postgres_pool_min, pool_max=cfg.postgres_pool_max
        )
    return SqliteStorage(settings.resolve(cfg.path))


def postgres_dsn(settings: Settings) -> str:
    """The PostgreSQL DSN from ``storage.postgres_dsn`` or the file ``postgres_dsn_file``."""
    cfg = settings.storage
    if cfg.postgres_dsn_file is not None:
        return settings.resolve(cfg.postgres_dsn_file).read_text().strip()
    if cfg.postgres_dsn is not None:
        return cfg.postgres_dsn.get_secret_value()
    raise InvalidRequestError("storage.kind is postgres but no postgres_dsn(_file) is set")
