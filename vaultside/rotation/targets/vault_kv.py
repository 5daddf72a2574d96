"""Target ``vault-kv``: the new value becomes a new version of a Vault/OpenBao KV v2 secret.

``set`` writes it with check-and-set against the version read in ``create_pending`` (so a
concurrent writer upstream makes the rotation fail rather than be overwritten); ``test``
reads it back; ``rollback`` destroys the version ``set`` wrote and, if that version was
current, writes the previous data back as the newest version. Grace: the previous upstream
version stays readable by number (Vault's own version history).
"""

from __future__ import annotations

import hmac

from vaultside.broker.source import Broker
from vaultside.errors import NotFoundError, UpstreamError
from vaultside.rotation.base import RotationContext
from vaultside.rotation.policy import VaultKvTargetSpec


class VaultKvTarget:
    """Writes rotated values into a KV v2 mount through a broker."""

    kind = "vault-kv"

    def __init__(self, spec: VaultKvTargetSpec, broker: Broker) -> None:
        self.spec = spec
        self.broker = broker

    def _forget(self) -> None:
        # Cached brokered reads of this secret must not outlive the write.
        self.broker.cache.invalidate((self.spec.mount, self.spec.path, None))

    async def create_pending(self, ctx: RotationContext) -> None:
        """Remember the upstream version the rotation starts from (0 = none yet)."""
        s, client = self.spec, self.broker.client
        try:
            meta = await self.broker.auth.call(lambda: client.read_kv2_metadata(s.mount, s.path))
            version = int(str(meta.get("current_version", 0)))
        except NotFoundError:
            version = 0
        ctx.state["upstream_base"] = str(version)

    async def set(self, ctx: RotationContext) -> None:
        """Write the pending data as a new upstream version (check-and-set)."""
        s, client, data = self.spec, self.broker.client, dict(ctx.pending)
        base = int(ctx.state["upstream_base"])
        written = await self.broker.auth.call(lambda: client.write_kv2(s.mount, s.path, data, base))
        ctx.state["upstream_written"] = str(written)
        self._forget()

    async def test(self, ctx: RotationContext) -> None:
        """Read the version back and compare it with the pending data."""
        s, client = self.spec, self.broker.client
        version = int(ctx.state["upstream_written"])
        got = await self.broker.auth.call(lambda: client.read_kv2(s.mount, s.path, version))
        same = sorted(got.data) == sorted(ctx.pending) and all(
            hmac.compare_digest(got.data[k].encode(), v.encode()) for k, v in ctx.pending.items()
        )
        if not same:
            raise UpstreamError("the version read back differs from the one written")

    async def finish(self, ctx: RotationContext) -> None:
        """Nothing more: the new upstream version is already the latest."""

    async def rollback(self, ctx: RotationContext) -> None:
        """Destroy the version ``set`` wrote; restore the previous data as the latest."""
        s, client = self.spec, self.broker.client
        written = ctx.state.get("upstream_written")
        base = int(ctx.state.get("upstream_base", "0"))
        if written is None:
            # A crash may have hit after the write but before it was journaled.
            try:
                meta = await self.broker.auth.call(
                    lambda: client.read_kv2_metadata(s.mount, s.path)
                )
            except NotFoundError:
                return
            current = int(str(meta.get("current_version", 0)))
            if current == base:
                return
            written = str(current)
        version = int(written)
        await self.broker.auth.call(lambda: client.destroy_kv2_versions(s.mount, s.path, [version]))
        if base > 0:
            old = await self.broker.auth.call(lambda: client.read_kv2(s.mount, s.path, base))
            await self.broker.auth.call(lambda: client.write_kv2(s.mount, s.path, old.data, None))
        self._forget()
