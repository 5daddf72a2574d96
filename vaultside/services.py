"""The long-lived objects of one server process (``Services``); ``Component`` (defined in
``vaultside.lifecycle``) is re-exported here.

Built by ``vaultside.wiring.server.build_services``; used by the API and the CLI. This module
chooses no implementation: it only holds what wiring built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vaultside.audit.sinks import AuditBroker
from vaultside.auth.policy import Authorizer, PolicyStore
from vaultside.auth.throttle import AuthThrottle
from vaultside.auth.tokens import TokenStore
from vaultside.broker.base import SecretSource
from vaultside.clock import Clock
from vaultside.cluster.leaders import LeaderJobRef
from vaultside.config.settings import Settings
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.seal import Seal
from vaultside.kv.store import KVStore
from vaultside.lifecycle import Component
from vaultside.storage.base import StorageBackend

__all__ = ["Component", "Services"]

if TYPE_CHECKING:
    from vaultside.auth.jwt_auth import JwtAuth
    from vaultside.rotation.service import RotationService
    from vaultside.scan.service import ScanService

log = logging.getLogger(__name__)


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
    # Leader-only jobs this server takes part in (``GET /v1/sys/leaders``).
    leader_jobs: list[LeaderJobRef] = field(default_factory=list)
    # Files whose presence means the seal was initialized (``initialized`` in sys/status).
    seal_material: list[Path] = field(default_factory=list)
    # Where leader-only jobs record who leads since when (wiring: the leader records' view).
    leaders: StorageBackend | None = None
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
