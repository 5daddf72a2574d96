"""Secret sources: reference scheme (``kv:``, ``vault:``) → the ``SecretSource`` resolving it.

``SOURCE_KINDS`` is the registry. A factory gets the settings and the services built so far,
may add components or leader jobs (a source with background work), and returns None when the
scheme is not configured in this process (no brokers → no ``vault:`` source).
"""

from __future__ import annotations

from collections.abc import Callable

from vaultside.broker.base import SecretSource
from vaultside.cluster.leaders import LeaderJobRef
from vaultside.config.settings import Settings
from vaultside.kv.source import KVSecretSource
from vaultside.services import Services
from vaultside.wiring.brokers import build_brokers
from vaultside.wiring.keyspace import lease, view

SourceFactory = Callable[[Settings, Services], SecretSource | None]


def _kv(settings: Settings, services: Services) -> SecretSource:
    return KVSecretSource(services.kv)


def _vault(settings: Settings, services: Services) -> SecretSource | None:
    if not settings.brokers:
        return None
    brokers = build_brokers(
        settings.brokers,
        view(services.barrier, "brokers"),
        services.clock,
        leaders=services.leaders,
    )
    services.components.append(brokers)
    for broker in brokers.brokers.values():
        services.leader_jobs.append(
            LeaderJobRef(broker.leases.job, lease("brokers", broker.leases.lock_name))
        )
    return brokers


SOURCE_KINDS: dict[str, SourceFactory] = {
    "kv": _kv,
    "vault": _vault,
}


def build_sources(settings: Settings, services: Services) -> None:
    """Fill ``services.sources`` with every configured scheme's source."""
    for scheme, factory in SOURCE_KINDS.items():
        source = factory(settings, services)
        if source is not None:
            services.sources[scheme] = source
