"""Seal kinds: ``settings.seal.kind`` → where the root key comes from."""

from __future__ import annotations

from pathlib import Path

from vaultside.config.settings import Settings
from vaultside.crypto.seal import FileSeal, PassphraseSeal, Seal
from vaultside.crypto.transit import build_transit_seal
from vaultside.errors import InvalidRequestError


def salt_file(settings: Settings) -> Path:
    """Where the passphrase seal keeps its argon2id salt and parameters (in the data dir)."""
    return settings.resolve(Path("vaultside.salt"))


def build_seal(settings: Settings) -> Seal:
    """The configured seal: where the root key comes from."""
    cfg = settings.seal
    if cfg.kind == "file":
        return FileSeal(settings.resolve(cfg.key_file))
    if cfg.kind == "passphrase":
        if cfg.passphrase_file is None:
            raise InvalidRequestError("seal.kind is passphrase but seal.passphrase_file is unset")
        return PassphraseSeal(settings.resolve(cfg.passphrase_file), salt_file(settings))
    if cfg.kind == "vault-transit":
        return build_transit_seal(settings)
    raise InvalidRequestError(f"seal kind {cfg.kind!r} is not available in this build")


def seal_material(settings: Settings) -> list[Path]:
    """Files whose presence means the seal was initialized (for ``initialized`` in status)."""
    cfg = settings.seal
    if cfg.kind == "file":
        return [settings.resolve(cfg.key_file)]
    if cfg.kind == "passphrase":
        return [salt_file(settings)]
    if cfg.kind == "vault-transit":
        return [settings.resolve(cfg.key_file)]  # the transit-wrapped root key
    return []
