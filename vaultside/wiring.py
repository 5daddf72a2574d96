"""The composition root: turns ``Settings`` into objects. The only module that chooses
implementations; everything else receives what it needs in its constructor.

Adding a backend, seal, audit sink or secret source is one new module plus one line here.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vaultside.audit.anchor import ChainAnchor
from vaultside.audit.hmac import AuditHasher, load_or_create_key
from vaultside.audit.sinks import AuditBroker, AuditSink, FileSink, StdoutSink
from vaultside.auth.policy import Authorizer, PolicyStore
from vaultside.auth.throttle import AuthThrottle
from vaultside.auth.tidy import TokenTidier
from vaultside.auth.tokens import TokenStore
from vaultside.broker.base import SecretSource
from vaultside.broker.source import BrokerRegistry
from vaultside.clock import Clock, SystemClock
from vaultside.config.settings import Settings
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.seal import FileSeal, PassphraseSeal, Seal
from vaultside.crypto.transit import build_transit_seal
from vaultside.errors import InvalidRequestError
from vaultside.kv.source import KVSecretSource
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.catalog import CatalogEntry, CommandEntry, TargetCatalog, WebhookEntry
from vaultside.rotation.service import RotationService
from vaultside.rotation.targets import TargetFactory
from vaultside.storage.base import StorageBackend
from vaultside.storage.sqlite import SqliteStorage

if TYPE_CHECKING:
    from vaultside.auth.jwt_auth import JwtAuth
    from vaultside.scan.service import ScanService

log = logging.getLogger(__name__)


class Component(Protocol):
    """A long-lived part started once the barrier is unsealed and closed on shutdown."""

    async def start(self) -> None:
        """Begin work (connect upstream, load state); called after unseal."""
        ...

    async def close(self) -> None:
        """Stop and release resources. Idempotent."""
        ...


@dataclass
class Services:
    """Every long-lived object the API needs, built once per process."""

    settings: Settings
    clock: Clock
    storage: StorageBackend
    seal: Seal
    barrier: Barrier
    kv: KVStore
    tokens: TokenStore
    policies: PolicyStore
    authorizer: Authorizer
    throttle: AuthThrottle
    audit: AuditBroker
    # Secret reference scheme ("kv", "vault") → the source that resolves it.
    sources: dict[str, SecretSource] = field(default_factory=dict)
    # Rotation policies, rotate-now and the scheduler (a component too).
    rotation: RotationService | None = None
    # Leak scans run in the server (``/v1/scans``; periodic container scans if configured).
    scans: ScanService | None = None
    # The JWT auth method (``/v1/auth/jwt/*``), when ``auth.jwt.issuer`` is set.
    jwt: JwtAuth | None = None
    # Started after unseal, closed (in reverse order) before storage closes.
    components: list[Component] = field(default_factory=list)
    _started: bool = False

    async def open(self) -> None:
        """Open the storage backend (the barrier stays sealed until ``unseal``)."""
        await self.storage.open()

    async def start_components(self) -> None:
        """Start every component (once); call after the barrier is unsealed."""
        if self._started:
            return
        self._started = True
        for component in self.components:
            try:
                await component.start()
            except Exception as exc:
                # One component (e.g. a broker whose Vault is down) must not keep the others
                # (or local secrets) from working; it is expected to retry on its own.
                log.error(
                    "component start failed",
                    extra={"component": type(component).__name__, "error_type": type(exc).__name__},
                )

    async def close(self) -> None:
        """Stop components, drop keys, flush audit sinks, close storage. Idempotent."""
        try:
            for component in reversed(self.components):
                try:
                    await component.close()
                except Exception:
                    log.exception("component close failed")
            await self.barrier.seal()
        finally:
            try:
                await self.audit.close()
            except Exception:
                log.exception("audit close failed")
            await self.storage.close()


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


def audit_key_file(settings: Settings) -> Path:
    """The HMAC key used to hash identifiers in audit records."""
    configured = settings.audit.hmac_key_file
    return settings.resolve(configured if configured is not None else Path("audit-hmac.key"))


def audit_chain_id(settings: Settings) -> str:
    """The id of this server's audit chain: ``audit.chain_id`` or hostname + file path."""
    if settings.audit.chain_id is not None:
        return settings.audit.chain_id
    file = settings.audit.file
    path = settings.resolve(file).resolve() if file is not None else Path("-")
    return f"{socket.gethostname()}:{path}"


def build_audit_sinks(settings: Settings) -> list[AuditSink]:
    """The configured audit sinks; a request whose record no sink accepts fails (503)."""
    sinks: list[AuditSink] = []
    # An empty VAULTSIDE_AUDIT__FILE parses as Path("."): treat it as "no file".
    if settings.audit.file is not None and str(settings.audit.file) not in ("", "."):
        path = settings.resolve(settings.audit.file)
        if path.is_dir():
            raise InvalidRequestError(f"audit.file {path} is a directory")
        sinks.append(
            FileSink(path, fsync=settings.audit.fsync, max_bytes=settings.audit.max_file_bytes)
        )
    if settings.audit.stdout:
        sinks.append(StdoutSink())
    if not sinks:
        # SECURITY: fail closed at start-up rather than answering 503 to every request.
        raise InvalidRequestError("no audit sink is configured: set audit.file or audit.stdout")
    return sinks


def _docker() -> object:
    from vaultside.scan.sources.container import docker_client  # docker SDK: only when used

    return docker_client()


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


def build_scans(settings: Settings, services: Services) -> ScanService:
    """The in-server scan service and, if ``scan.periodic_interval`` > 0, its periodic
    container scanner (a component that scans only while it holds the storage lease)."""
    # Imported here: importing wiring does not load the scanner (docker SDK, hyperscan).
    from vaultside.scan.periodic import PeriodicScanner, ScanMetrics, ScanResults
    from vaultside.scan.service import ScanService

    periodic = settings.scan.periodic_interval > 0
    scans = ScanService(
        values=services.kv,
        docker_factory=_docker,
        clock=services.clock,
        rotator=services.rotation,
        audit=services.audit,
        results=ScanResults(services.barrier, keep=settings.scan.results_keep),
        metrics=ScanMetrics() if periodic else None,
    )
    if scans.metrics is not None and scans.results is not None:
        services.components.append(
            PeriodicScanner(
                scans,
                services.barrier,
                scans.results,
                clock=services.clock,
                interval=settings.scan.periodic_interval,
                metrics=scans.metrics,
            )
        )
    return scans


def build_jwt(settings: Settings, services: Services) -> JwtAuth | None:
    """The JWT auth method over the configured key source, or None when not configured."""
    cfg = settings.auth.jwt
    if cfg.issuer is None:
        return None
    from vaultside.auth.jwks import (
        DISCOVERY_PATH,
        HttpFetcher,
        JwksKeys,
        KeySourceConfig,
        check_url,
    )
    from vaultside.auth.jwt_auth import JwtAuth, JwtRoleStore

    # A plain-http key URL to a non-loopback host is refused at start-up, not at first login.
    if cfg.jwks_url is not None:
        check_url(cfg.jwks_url)
    if cfg.discovery:
        check_url(cfg.issuer.rstrip("/") + DISCOVERY_PATH)
    source = KeySourceConfig(
        file=settings.resolve(cfg.jwks_file) if cfg.jwks_file is not None else None,
        url=cfg.jwks_url,
        discovery_issuer=cfg.issuer if cfg.discovery else None,
    )
    fetch = HttpFetcher(
        timeout=cfg.fetch_timeout,
        ca_file=settings.resolve(cfg.ca_file) if cfg.ca_file is not None else None,
        token_file=(
            settings.resolve(cfg.fetch_token_file) if cfg.fetch_token_file is not None else None
        ),
    )
    keys = JwksKeys(
        source,
        clock=services.clock,
        fetch=fetch,
        cache_ttl=cfg.jwks_cache_ttl,
        refetch_interval=cfg.jwks_refetch_interval,
    )
    return JwtAuth(
        issuer=cfg.issuer,
        keys=keys,
        roles=JwtRoleStore(services.barrier),
        tokens=services.tokens,
        clock=services.clock,
        audiences=cfg.audiences,
        algorithms=list(cfg.algorithms),
        clock_skew=cfg.clock_skew,
    )


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Build every service from settings. Nothing is opened or unsealed yet."""
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    storage = build_storage(settings)
    seal = build_seal(settings)
    barrier = Barrier(storage, seal, clock=clock)
    kv = KVStore(
        barrier,
        clock=clock,
        max_value_bytes=settings.kv.max_value_bytes,
        default_max_versions=settings.kv.default_max_versions,
    )
    policies = PolicyStore(barrier, clock=clock)
    sinks = build_audit_sinks(settings)
    hasher = AuditHasher(load_or_create_key(audit_key_file(settings)))
    services = Services(
        settings=settings,
        clock=clock,
        storage=storage,
        seal=seal,
        barrier=barrier,
        kv=kv,
        tokens=TokenStore(barrier, clock=clock),
        policies=policies,
        authorizer=Authorizer(policies),
        throttle=AuthThrottle(
            clock,
            burst=settings.auth.throttle_burst,
            rate=settings.auth.throttle_rate,
            max_wait=settings.auth.throttle_max_wait,
            max_clients=settings.auth.throttle_max_clients,
        ),
        audit=AuditBroker(
            sinks,
            hasher,
            clock=clock,
            summary_interval=settings.audit.summary_interval,
            summary_max_clients=settings.audit.summary_max_clients,
        ),
    )
    # First component: the chain key reaches the audit sinks as soon as the barrier unseals.
    services.components.append(
        ChainAnchor(barrier, services.audit.file_sinks, audit_chain_id(settings))
    )
    services.sources["kv"] = KVSecretSource(kv)
    services.jwt = build_jwt(settings, services)
    if settings.auth.token_tidy_interval > 0:
        services.components.append(
            TokenTidier(
                services.tokens, barrier, clock=clock, interval=settings.auth.token_tidy_interval
            )
        )
    if settings.storage.kind == "postgres":
        # Replicas: other servers' token, policy and keyring changes reach this one's caches
        # through LISTEN/NOTIFY; the caches' 1 s staleness bound stays as the fallback.
        from vaultside.cluster.invalidation import CacheInvalidator
        from vaultside.storage.notify import PostgresChangeFeed

        feed = PostgresChangeFeed(postgres_dsn(settings))
        services.components.append(CacheInvalidator(feed, services.tokens, policies, barrier))
    if settings.brokers:
        brokers = BrokerRegistry.from_settings(settings.brokers, barrier, clock)
        services.sources["vault"] = brokers
        services.components.append(brokers)
    services.rotation = RotationService(
        kv,
        barrier,
        TargetFactory(clock, services.sources, build_target_catalog(settings)),
        authority=RotationAuthority(services.tokens, services.authorizer),
        clock=clock,
        audit=services.audit,
        schedule=settings.rotation.scheduler,
        lease_ttl=settings.rotation.lease_ttl,
        concurrency=settings.rotation.concurrency,
        consumer_gone_after=settings.rotation.consumer_gone_after,
        consumer_ttl=settings.rotation.consumer_ttl,
    )
    services.components.append(services.rotation)
    services.scans = build_scans(settings, services)
    if settings.inject.plugin_in_server:
        from vaultside.inject.embedded import EmbeddedPlugin  # docker SDK: only when used

        services.components.append(EmbeddedPlugin(settings, clock=clock))
    return services
