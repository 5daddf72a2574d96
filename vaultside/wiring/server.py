"""The server's composition root: turns ``Settings`` into objects. Everything
``vaultside serve`` runs is built here (storage, seal and audit come from their own wiring
modules).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vaultside.audit.anchor import ChainAnchor
from vaultside.audit.hmac import AuditHasher, load_or_create_key
from vaultside.audit.sinks import AuditBroker
from vaultside.auth.policy import Authorizer, PolicyStore
from vaultside.auth.throttle import AuthThrottle
from vaultside.auth.tidy import TIDY_LEASE, TokenTidier
from vaultside.auth.tokens import TokenStore
from vaultside.clock import Clock, SystemClock
from vaultside.cluster.leaders import LeaderJobRef
from vaultside.config.settings import Settings
from vaultside.crypto.barrier import Barrier
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.scheduler import LEADER_JOB, LEADER_LEASE
from vaultside.rotation.service import RotationService
from vaultside.services import Services
from vaultside.wiring.audit import audit_chain_id, audit_key_file, build_audit_sinks
from vaultside.wiring.keyspace import cache_invalidator, lease, view
from vaultside.wiring.rotation import build_target_catalog, target_factory
from vaultside.wiring.seal import build_seal, seal_material
from vaultside.wiring.sources import build_sources
from vaultside.wiring.storage import build_storage, postgres_dsn

if TYPE_CHECKING:
    from vaultside.auth.jwt_auth import JwtAuth
    from vaultside.scan.service import ScanService

log = logging.getLogger(__name__)


def _docker() -> object:
    from vaultside.scan.sources.container import docker_client  # docker SDK: only when used

    return docker_client()


def build_scans(settings: Settings, services: Services) -> ScanService:
    """The in-server scan service and, if ``scan.periodic_interval`` > 0, its periodic
    container scanner (a component that scans only while it holds the storage lease)."""
    # Imported here: importing wiring does not load the scanner (docker SDK, hyperscan).
    from vaultside.scan.periodic import PERIODIC_LEASE, PeriodicScanner
    from vaultside.scan.results import ScanMetrics, ScanResults
    from vaultside.scan.service import ScanService
    from vaultside.wiring.scan import SERVER_SCAN_SOURCES

    periodic = settings.scan.periodic_interval > 0
    services.leader_jobs.append(
        LeaderJobRef(PeriodicScanner.job_name, lease("scan", PERIODIC_LEASE), periodic)
    )
    scans = ScanService(
        values=services.kv,
        docker_factory=_docker,
        clock=services.clock,
        sources=SERVER_SCAN_SOURCES,
        rotator=services.rotation,
        audit=services.audit,
        results=ScanResults(view(services.barrier, "scan"), keep=settings.scan.results_keep),
        metrics=ScanMetrics() if periodic else None,
    )
    if scans.metrics is not None and scans.results is not None:
        services.components.append(
            PeriodicScanner(
                scans,
                view(services.barrier, "scan"),
                scans.results,
                clock=services.clock,
                interval=settings.scan.periodic_interval,
                metrics=scans.metrics,
                leaders=services.leaders,
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
        roles=JwtRoleStore(view(services.barrier, "jwt_roles")),
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
        view(barrier, "kv"),
        clock=clock,
        max_value_bytes=settings.kv.max_value_bytes,
        default_max_versions=settings.kv.default_max_versions,
    )
    policies = PolicyStore(view(barrier, "policies"), clock=clock)
    sinks = build_audit_sinks(settings)
    hasher = AuditHasher(load_or_create_key(audit_key_file(settings)))
    services = Services(
        settings=settings,
        clock=clock,
        storage=storage,
        seal=seal,
        barrier=barrier,
        kv=kv,
        tokens=TokenStore(view(barrier, "tokens"), clock=clock),
        policies=policies,
        authorizer=Authorizer(policies),
        throttle=AuthThrottle(
            clock,
            burst=settings.auth.throttle_burst,
            rate=settings.auth.throttle_rate,
            max_wait=settings.auth.throttle_max_wait,
            max_clients=settings.auth.throttle_max_clients,
        ),
        leaders=view(barrier, "leaders"),
        audit=AuditBroker(
            sinks,
            hasher,
            clock=clock,
            summary_interval=settings.audit.summary_interval,
            summary_max_clients=settings.audit.summary_max_clients,
        ),
        seal_material=seal_material(settings),
    )
    # First component: the chain key reaches the audit sinks as soon as the barrier unseals.
    services.components.append(
        ChainAnchor(view(barrier, "audit"), services.audit.file_sinks, audit_chain_id(settings))
    )
    services.jwt = build_jwt(settings, services)
    tidy = settings.auth.token_tidy_interval > 0
    services.leader_jobs.append(
        LeaderJobRef(TokenTidier.job_name, lease("tokens", TIDY_LEASE), tidy)
    )
    if tidy:
        services.components.append(
            TokenTidier(
                services.tokens,
                view(barrier, "tokens"),
                clock=clock,
                interval=settings.auth.token_tidy_interval,
                leaders=services.leaders,
            )
        )
    if settings.storage.kind == "postgres":
        # Replicas: other servers' token, policy and keyring changes reach this one's caches
        # through LISTEN/NOTIFY; the caches' 1 s staleness bound stays as the fallback.
        from vaultside.storage.notify import PostgresChangeFeed

        feed = PostgresChangeFeed(postgres_dsn(settings))
        services.components.append(cache_invalidator(feed, barrier, services.tokens, policies))
    build_sources(settings, services)
    services.rotation = RotationService(
        kv,
        view(barrier, "rotation"),
        target_factory(clock, services.sources, build_target_catalog(settings)),
        authority=RotationAuthority(services.tokens, services.authorizer),
        clock=clock,
        audit=services.audit,
        schedule=settings.rotation.scheduler,
        lease_ttl=settings.rotation.lease_ttl,
        concurrency=settings.rotation.concurrency,
        consumer_gone_after=settings.rotation.consumer_gone_after,
        consumer_ttl=settings.rotation.consumer_ttl,
        leaders=services.leaders,
    )
    services.components.append(services.rotation)
    services.leader_jobs.insert(
        0, LeaderJobRef(LEADER_JOB, lease("rotation", LEADER_LEASE), settings.rotation.scheduler)
    )
    services.scans = build_scans(settings, services)
    if settings.inject.plugin_in_server:
        from vaultside.wiring.plugin import plugin_component  # docker SDK: only when used

        plugin = plugin_component(settings, clock=clock, in_server=True)
        services.rotation.add_redelivery(plugin)  # rotation knows only the Redelivery protocol
        services.components.append(plugin)
    return services
