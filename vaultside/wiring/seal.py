"""Seal kinds: ``settings.seal.kind`` → where the root key comes from.

``SEAL_KINDS`` is the registry: each kind builds its ``Seal`` and names the files whose
presence means it was initialized (``initialized`` in ``sys/status``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from vaultside.clock import SystemClock
from vaultside.config.settings import Settings
from vaultside.crypto.seal import FileSeal, PassphraseSeal, Seal
from vaultside.crypto.transit import TransitSeal
from vaultside.errors import InvalidRequestError
from vaultside.registry import lookup


class SealKind(NamedTuple):
    """One seal kind: how to build it, and which files show it was initialized."""

    build: Callable[[Settings], Seal]
    material: Callable[[Settings], list[Path]]


def salt_file(settings: Settings) -> Path:
    """Where the passphrase seal keeps its argon2id salt and parameters (in the data dir)."""
    return settings.resolve(Path("vaultside.salt"))


def _key_file(settings: Settings) -> list[Path]:
    return [settings.resolve(settings.seal.key_file)]


def _file(settings: Settings) -> Seal:
    return FileSeal(settings.resolve(settings.seal.key_file))


def _passphrase(settings: Settings) -> Seal:
    cfg = settings.seal
    if cfg.passphrase_file is None:
        raise InvalidRequestError("seal.kind is passphrase but seal.passphrase_file is unset")
    return PassphraseSeal(settings.resolve(cfg.passphrase_file), salt_file(settings))


def build_transit_seal(settings: Settings) -> TransitSeal:
    """The ``vault-transit`` seal: ``seal.transit_broker`` names a configured broker.

    ``seal.key_file`` holds the transit-wrapped root key; it is created on first start.
    """
    from vaultside.broker.auth import BrokerAuth  # hvac: only when used
    from vaultside.broker.transit import BrokerTransit
    from vaultside.broker.vault import VaultClient

    cfg = settings.seal
    name = cfg.transit_broker
    if not name or name not in settings.brokers:
        known = ", ".join(sorted(settings.brokers)) or "none"
        raise InvalidRequestError(
            f"seal.kind is vault-transit but seal.transit_broker {name!r} is not a configured "
            f"broker (configured: {known})"
        )
    broker = settings.brokers[name]
    client = VaultClient(name, broker, max_workers=2)
    transit = BrokerTransit(
        client,
        BrokerAuth(client, broker, SystemClock()),
        mount=cfg.transit_mount,
        key=cfg.transit_key,
    )
    return TransitSeal(transit, wrapped_key_file=settings.resolve(cfg.key_file), auto_init=True)


SEAL_KINDS: dict[str, SealKind] = {
    "file": SealKind(_file, _key_file),
    "passphrase": SealKind(_passphrase, lambda settings: [salt_file(settings)]),
    # The material is the transit-wrapped root key.
    "vault-transit": SealKind(build_transit_seal, _key_file),
}


def build_seal(settings: Settings) -> Seal:
    """The configured seal: where the root key comes from."""
    return lookup(SEAL_KINDS, settings.seal.kind, "seal.kind").build(settings)


def seal_material(settings: Settings) -> list[Path]:
    """Files whose presence means the seal was initialized (for ``initialized`` in status)."""
    kind = SEAL_KINDS.get(settings.seal.kind)
    return kind.material(settings) if kind is not None else []
