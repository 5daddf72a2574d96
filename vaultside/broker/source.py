"""Named brokers in front of Vault/OpenBao, and the ``SecretSource`` for ``vault:`` references.

A ``Broker`` is one configured connection: its hvac client, its own auth, a read cache (KV) and
a lease manager (dynamic secrets). ``BrokerRegistry`` maps names to brokers and resolves
references (``vaultside.wiring.brokers`` builds it from settings). Mount kinds come from
``kv_versions`` in config or are detected once per mount.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from vaultside.broker.auth import BrokerAuth
from vaultside.broker.base import ResolvedSecret
from vaultside.broker.cache import SecretCache
from vaultside.broker.leases import Lease, LeaseManager, Subscription
from vaultside.broker.vault import MountInfo, UpstreamSecret, VaultClient
from vaultside.clock import Clock
from vaultside.config.settings import BrokerSettings
from vaultside.errors import InvalidRequestError, NotFoundError, SealedError
from vaultside.lifecycle import LoopTask
from vaultside.refs import SecretRef
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokeredRead:
    """One brokered secret: all its fields, plus version, staleness and lease info."""

    data: dict[str, str] = field(repr=False)
    version: str
    kind: Literal["kv1", "kv2", "dynamic"]
    stale: bool = False
    age: float = 0.0
    lease_id: str | None = None
    lease_duration: float | None = None
    expires_at: float | None = None
    renewable: bool = False
    # Seconds the credentials are known to stay valid (see LeaseSync.remaining_life).
    remaining_life: float | None = None


class Broker:
    """One named Vault/OpenBao connection with its auth, cache and leases."""

    def __init__(
        self,
        name: str,
        settings: BrokerSettings,
        storage: StorageBackend,
        clock: Clock,
        *,
        client: VaultClient | None = None,
        leaders: StorageBackend | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.client = client or VaultClient(name, settings)
        self.auth = BrokerAuth(self.client, settings, clock)
        self.cache: SecretCache[UpstreamSecret] = SecretCache(
            clock, broker=name, max_staleness=settings.max_staleness
        )
        self.leases = LeaseManager(
            name,
            self,
            storage,
            clock,
            renew_fraction=settings.renew_fraction,
            lock_ttl=settings.lease_lock_ttl,
            replace_fraction=settings.replace_fraction,
            min_remaining=settings.min_remaining,
            verify_interval=settings.lease_verify_interval,
            leaders=leaders,
        )
        self._mounts: dict[str, MountInfo] = {
            m: MountInfo("kv", v) for m, v in settings.kv_versions.items()
        }
        self._auth_loop = LoopTask(self.auth.run, name="broker-auth")
        self._leases_loaded = False
        self._load_lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the token renewal loop and pick up persisted leases (if storage is unsealed)."""
        self._start_auth()
        with contextlib.suppress(SealedError):
            await self._load_leases()

    def _start_auth(self) -> None:
        # Also called on first use, so a broker works without an explicit ``start``.
        self._auth_loop.start()

    async def close(self) -> None:
        """Stop background work and close connections (leases stay valid and persisted)."""
        await self._auth_loop.close()
        await self.leases.close()
        self.client.close()

    async def _load_leases(self) -> None:
        if self._leases_loaded:
            return
        async with self._load_lock:
            if not self._leases_loaded:
                count = await self.leases.load()
                self._leases_loaded = True
                if count:
                    log.info("broker_leases_loaded", extra={"broker": self.name, "count": count})

    def ttl_for(self, mount: str, path: str) -> float:
        """The cache TTL for a secret: the longest matching ``cache_ttls`` prefix, else default."""
        full = f"{mount}/{path}"
        best, ttl = -1, self.settings.cache_ttl
        for prefix, value in self.settings.cache_ttls.items():
            p = prefix.strip("/")
            if (full == p or full.startswith(p + "/")) and len(p) > best:
                best, ttl = len(p), value
        return ttl

    async def mount_info(self, mount: str) -> MountInfo:
        """The engine behind ``mount``: configured, or detected once and remembered."""
        info = self._mounts.get(mount)
        if info is None:
            info = await self.auth.call(lambda: self.client.mount_info(mount))
            if not info.kind:
                raise NotFoundError(f"broker {self.name!r}: no secrets engine at {mount!r}")
            self._mounts[mount] = info
        return info

    async def read(self, mount: str, path: str, version: int | None = None) -> BrokeredRead:
        """Every field of a brokered secret (cached KV, or the shared dynamic lease)."""
        self._start_auth()
        info = await self.mount_info(mount)
        if info.kind != "kv":
            if version is not None:
                raise InvalidRequestError(
                    f"versions apply to KV secrets only; {mount!r} is a {info.kind} engine"
                )
            await self._load_leases()
            lease = await self.leases.acquire(f"{mount}/{path}")
            return self._lease_read(lease)
        if info.kv_version == 1 and version is not None:
            raise InvalidRequestError(f"{mount!r} is a KV v1 mount: secrets have no versions")
        if info.kv_version == 2:

            async def fetch() -> UpstreamSecret:
                return await self.auth.call(lambda: self.client.read_kv2(mount, path, version))
        else:

            async def fetch() -> UpstreamSecret:
                return await self.auth.call(lambda: self.client.read_kv1(mount, path))

        result = await self.cache.get((mount, path, version), self.ttl_for(mount, path), fetch)
        kind: Literal["kv1", "kv2"] = "kv2" if info.kv_version == 2 else "kv1"
        secret = result.value
        return BrokeredRead(secret.data, secret.version, kind, result.stale, result.age)

    def _lease_read(self, lease: Lease) -> BrokeredRead:
        return BrokeredRead(
            lease.data,
            lease.lease_id,
            "dynamic",
            lease_id=lease.lease_id,
            lease_duration=lease.duration,
            expires_at=lease.expires_at,
            renewable=lease.renewable,
            remaining_life=self.leases.remaining_life(lease),
        )

    async def read_metadata(self, mount: str, path: str) -> dict[str, object]:
        """KV v2 metadata (versions, times, custom metadata) — never values."""
        info = await self.mount_info(mount)
        if info.kind != "kv" or info.kv_version != 2:
            raise InvalidRequestError(
                f"metadata is only kept by KV v2 mounts; {mount!r} is not one"
            )
        return await self.auth.call(lambda: self.client.read_kv2_metadata(mount, path))

    # --- LeaseUpstream --------------------------------------------------------------------------

    async def issue(self, key: str) -> UpstreamSecret:
        """Read ``<mount>/<path>`` upstream, issuing a new lease."""
        mount, _, path = key.partition("/")
        return await self.auth.call(lambda: self.client.read_generic(mount, path))

    async def renew(self, lease_id: str, increment: float) -> tuple[float, bool]:
        """Renew a lease upstream."""
        return await self.auth.call(lambda: self.client.renew_lease(lease_id, increment))

    async def revoke(self, lease_id: str) -> None:
        """Revoke a lease upstream."""
        await self.auth.call(lambda: self.client.revoke_lease(lease_id))

    async def lookup(self, lease_id: str) -> float | None:
        """Seconds the lease has left upstream; None once it is gone (revoked, expired)."""
        return await self.auth.call(lambda: self.client.lookup_lease(lease_id))


@dataclass(slots=True)
class LeaseWatch:
    """A consumer's hold on a dynamic secret; ``close`` it when the consumer is gone."""

    broker: Broker
    subscription: Subscription
    lease: Lease = field(repr=False)

    async def close(self) -> None:
        """Stop watching; the last watcher leaving revokes the lease."""
        await self.broker.leases.unsubscribe(self.subscription)


class BrokerRegistry:
    """The configured brokers by name; the ``SecretSource`` for ``vault:`` references."""

    def __init__(self, brokers: dict[str, Broker]) -> None:
        self.brokers = brokers

    def get(self, name: str) -> Broker:
        """The broker called ``name``; ``InvalidRequestError`` naming the configured ones."""
        broker = self.brokers.get(name)
        if broker is None:
            known = ", ".join(sorted(self.brokers)) or "none"
            raise InvalidRequestError(f"unknown broker {name!r} (configured: {known})")
        return broker

    async def start(self) -> None:
        """Start every broker."""
        for broker in self.brokers.values():
            await broker.start()

    async def close(self) -> None:
        """Close every broker."""
        for broker in self.brokers.values():
            await broker.close()

    async def watch(self, ref: SecretRef, on_new: Callable[[Lease], Awaitable[None]]) -> LeaseWatch:
        """Hold the dynamic secret behind ``ref``; ``on_new`` gets replacement credentials.

        For injection and rotation: the lease stays renewed, is replaced before its max TTL
        (``on_new`` is awaited with the new lease), and is revoked when the last watch closes.
        """
        if ref.scheme != "vault" or ref.broker is None or ref.mount is None:
            raise InvalidRequestError(f"not a vault reference: {ref}")
        broker = self.get(ref.broker)
        read = await broker.read(ref.mount, ref.path, ref.version)
        if read.kind != "dynamic":
            raise InvalidRequestError(f"{ref} is a {read.kind} secret, not a lease to watch")
        key = f"{ref.mount}/{ref.path}"
        sub = await broker.leases.subscribe(key, on_new)
        lease = broker.leases.current(key)
        if lease is None or lease.lease_id != read.lease_id:
            lease = await broker.leases.acquire(key)
        return LeaseWatch(broker, sub, lease)

    async def resolve(self, ref: SecretRef) -> ResolvedSecret:
        """The value of one field of a ``vault:`` reference."""
        if ref.scheme != "vault" or ref.broker is None or ref.mount is None:
            raise InvalidRequestError(f"not a vault reference: {ref}")
        read = await self.get(ref.broker).read(ref.mount, ref.path, ref.version)
        if ref.field not in read.data:
            raise InvalidRequestError(f"{ref} has no field {ref.field!r}")
        return ResolvedSecret(
            ref,
            read.data[ref.field],
            read.version,
            lease_id=read.lease_id,
            expires_at=read.expires_at,
            stale=read.stale,
        )
