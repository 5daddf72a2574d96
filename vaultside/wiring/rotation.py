"""Rotation kinds: which ``Target`` serves a policy's ``target.kind`` and which ``Generator``
its ``generator.kind``, plus the operator's declared command/webhook targets.

``TARGET_KINDS`` and ``GENERATOR_KINDS`` are the registries; ``target_factory`` hands them to
rotation (the registries themselves, so a kind registered later is seen too).
"""

from __future__ import annotations

from vaultside.broker.base import SecretSource
from vaultside.clock import Clock
from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.registry import lookup
from vaultside.rotation.base import Target
from vaultside.rotation.catalog import CatalogEntry, CommandEntry, TargetCatalog, WebhookEntry
from vaultside.rotation.generators import (
    BytesGenerator,
    Generator,
    KeyPairGenerator,
    PasswordGenerator,
    TokenGenerator,
)
from vaultside.rotation.policy import (
    CommandTargetSpec,
    GeneratorSpec,
    KvTargetSpec,
    PostgresTargetSpec,
    VaultKvTargetSpec,
    WebhookTargetSpec,
)
from vaultside.rotation.targets import GeneratorBuilder, TargetBuilder, TargetFactory


def _kv(spec: KvTargetSpec, ctx: TargetFactory) -> Target:
    from vaultside.rotation.targets.kv import KvTarget

    return KvTarget()


def _postgres(spec: PostgresTargetSpec, ctx: TargetFactory) -> Target:
    from vaultside.rotation.targets.postgres import PostgresTarget  # asyncpg: only when used

    return PostgresTarget(spec, ctx.sources, ctx.clock)


def _vault_kv(spec: VaultKvTargetSpec, ctx: TargetFactory) -> Target:
    from vaultside.broker.source import BrokerRegistry
    from vaultside.rotation.targets.vault_kv import VaultKvTarget

    registry = ctx.sources.get("vault")
    if not isinstance(registry, BrokerRegistry):
        raise InvalidRequestError("target.broker: no Vault/OpenBao brokers are configured")
    return VaultKvTarget(spec, registry.get(spec.broker))


def _command(spec: CommandTargetSpec, ctx: TargetFactory) -> Target:
    from vaultside.rotation.targets.command import CommandTarget

    entry = ctx.catalog.get("command", spec.name)
    assert isinstance(entry, CommandEntry)
    return CommandTarget(entry)


def _webhook(spec: WebhookTargetSpec, ctx: TargetFactory) -> Target:
    from vaultside.rotation.targets.webhook import WebhookTarget

    hook = ctx.catalog.get("webhook", spec.name)
    assert isinstance(hook, WebhookEntry)
    return WebhookTarget(hook)


TARGET_KINDS: dict[str, TargetBuilder] = {
    "kv": _kv,
    "postgres": _postgres,
    "vault-kv": _vault_kv,
    "command": _command,
    "webhook": _webhook,
}

GENERATOR_KINDS: dict[str, GeneratorBuilder] = {
    "password": PasswordGenerator,
    "bytes": BytesGenerator,
    "token": TokenGenerator,
    "keypair": KeyPairGenerator,
}


def build_generator(spec: GeneratorSpec) -> Generator:
    """The generator for a validated spec."""
    return lookup(GENERATOR_KINDS, spec.kind, "generator.kind")(spec)


def target_factory(
    clock: Clock,
    sources: dict[str, SecretSource] | None = None,
    catalog: TargetCatalog | None = None,
) -> TargetFactory:
    """Rotation's view of the registries, over ``sources`` and the declared ``catalog``."""
    return TargetFactory(
        clock,
        sources if sources is not None else {},
        catalog if catalog is not None else TargetCatalog(),
        kinds=TARGET_KINDS,
        generators=GENERATOR_KINDS,
    )


def build_target_catalog(settings: Settings) -> TargetCatalog:
    """The operator's declared rotation targets; every command pin is verified now, so a
    mismatch refuses the start (``InvalidRequestError`` naming the target)."""
    entries: dict[str, CatalogEntry] = {}
    for name, cfg in settings.rotation.targets.items():
        if cfg.kind == "command":
            entries[name] = CommandEntry(
                name, tuple(cfg.argv), cfg.sha256, timeout=cfg.timeout, env=tuple(cfg.env)
            )
        else:
            ca = settings.resolve(cfg.ca_file) if cfg.ca_file is not None else None
            entries[name] = WebhookEntry(
                name, cfg.url, ca_file=ca, allow_http=cfg.allow_http, timeout=cfg.timeout
            )
    catalog = TargetCatalog(entries)
    catalog.verify()
    return catalog
