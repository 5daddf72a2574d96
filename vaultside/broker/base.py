"""The ``SecretSource`` seam: a reference in, a value out.

Implementations: the local KV store, Vault/OpenBao brokers, and the HTTP client that asks a
vaultside server (used by the sidecar and an out-of-process plugin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vaultside.refs import SecretRef


@dataclass(frozen=True, slots=True)
class ResolvedSecret:
    """A resolved field. ``repr`` never shows the value."""

    ref: SecretRef
    value: str
    version: str
    lease_id: str | None = None
    expires_at: float | None = None
    stale: bool = False

    def __repr__(self) -> str:
        return f"ResolvedSecret(ref={self.ref!s}, version={self.version!r}, stale={self.stale})"


class SecretSource(Protocol):
    """Resolves references. Raises ``NotFoundError``, ``PermissionDeniedError``,
    ``InvalidRequestError`` (unknown broker, missing field) or ``UpstreamUnavailableError``."""

    async def resolve(self, ref: SecretRef) -> ResolvedSecret:
        """The current (or pinned) value of the referenced field."""
        ...
