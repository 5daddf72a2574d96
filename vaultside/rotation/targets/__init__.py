"""Rotation targets: one module per kind of credential holder; ``TargetFactory`` builds them."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaultside.broker.base import SecretSource
from vaultside.clock import Clock
from vaultside.errors import InvalidRequestError
from vaultside.rotation.base import Target
from vaultside.rotation.catalog import CommandEntry, TargetCatalog, WebhookEntry
from vaultside.rotation.policy import (
    CommandTargetSpec,
    KvTargetSpec,
    PostgresTargetSpec,
    TargetSpec,
    VaultKvTargetSpec,
    WebhookTargetSpec,
)


@dataclass
class TargetFactory:
    """Builds the ``Target`` for a policy's target spec from the process's services."""

    clock: Clock
    # Reference scheme → source ("kv", "vault"); the broker registry is ``sources["vault"]``.
    sources: dict[str, SecretSource] = field(default_factory=dict)
    # The operator's declared command/webhook targets; a policy refers to one by name.
    catalog: TargetCatalog = field(default_factory=TargetCatalog)

    def build(self, spec: TargetSpec) -> Target:
        """The target for ``spec``; ``InvalidRequestError`` if it cannot be served here."""
        if isinstance(spec, KvTargetSpec):
            from vaultside.rotation.targets.kv import KvTarget

            return KvTarget()
        if isinstance(spec, PostgresTargetSpec):
            from vaultside.rotation.targets.postgres import PostgresTarget

            return PostgresTarget(spec, self.sources, self.clock)
        if isinstance(spec, VaultKvTargetSpec):
            from vaultside.broker.source import BrokerRegistry
            from vaultside.rotation.targets.vault_kv import VaultKvTarget

            registry = self.sources.get("vault")
            if not isinstance(registry, BrokerRegistry):
                raise InvalidRequestError("target.broker: no Vault/OpenBao brokers are configured")
            return VaultKvTarget(spec, registry.get(spec.broker))
        if isinstance(spec, CommandTargetSpec):
            from vaultside.rotation.targets.command import CommandTarget

            entry = self.catalog.get("command", spec.name)
            assert isinstance(entry, CommandEntry)
            return CommandTarget(entry)
        if isinstance(spec, WebhookTargetSpec):
            from vaultside.rotation.targets.webhook import WebhookTarget

            hook = self.catalog.get("webhook", spec.name)
            assert isinstance(hook, WebhookEntry)
            return WebhookTarget(hook)
        raise InvalidRequestError(f"target.kind: unknown target {spec!r}")
