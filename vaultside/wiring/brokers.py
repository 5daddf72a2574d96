"""Brokers: ``settings.brokers`` → one ``Broker`` per named Vault/OpenBao connection."""

from __future__ import annotations

from vaultside.broker.source import Broker, BrokerRegistry
from vaultside.clock import Clock
from vaultside.config.settings import BrokerSettings
from vaultside.storage.base import StorageBackend


def build_brokers(
    settings: dict[str, BrokerSettings],
    storage: StorageBackend,
    clock: Clock,
    *,
    leaders: StorageBackend | None = None,
) -> BrokerRegistry:
    """One ``Broker`` per configured entry (``storage``: the brokers' view, where leases
    persist; ``leaders``: the leader records' view)."""
    return BrokerRegistry(
        {name: Broker(name, s, storage, clock, leaders=leaders) for name, s in settings.items()}
    )
