"""``HttpSecretSource``: the ``SecretSource`` seam over a vaultside server's ``/v1/resolve``.

Used by the sidecar and the Docker plugin: references are resolved in batches of at most
``RESOLVE_BATCH`` (the server's limit per request). Errors: the mapped ``vaultside.errors`` class
of any failing reference (the whole call fails), ``UpstreamError`` if the server left one out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from vaultside import errors
from vaultside.broker.base import ResolvedSecret
from vaultside.client.api import VaultsideClient
from vaultside.refs import SecretRef, parse_ref

RESOLVE_BATCH: Final = 256


class HttpSecretSource:
    """A ``SecretSource`` that resolves references through a vaultside server's ``/v1/resolve``."""

    def __init__(self, client: VaultsideClient) -> None:
        self.client = client

    async def resolve(self, ref: SecretRef) -> ResolvedSecret:
        """The current (or pinned) value of one reference."""
        return (await self.resolve_many([ref]))[str(ref)]

    async def resolve_many(self, refs: Sequence[SecretRef | str]) -> dict[str, ResolvedSecret]:
        """Resolve several references in one request; keyed by ``str(ref)`` (for a string,
        the string as given, so ``"kv:a#b@01"`` is found under that key too).

        Any failing reference fails the whole call with its mapped error.
        """
        given = {(r if isinstance(r, str) else str(r)): r for r in refs}
        parsed = {k: r if isinstance(r, SecretRef) else parse_ref(r) for k, r in given.items()}
        if not parsed:
            return {}
        keys = list(dict.fromkeys(str(r) for r in parsed.values()))
        values: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), RESOLVE_BATCH):  # the server takes ≤ 256 per request
            values |= await self.client.resolve(keys[start : start + RESOLVE_BATCH])
        out: dict[str, ResolvedSecret] = {}
        for key, ref in parsed.items():
            item = values.get(str(ref))
            if item is None or "value" not in item:
                raise errors.UpstreamError(f"server did not resolve {ref}")
            out[key] = ResolvedSecret(
                ref=ref,
                value=str(item["value"]),
                version=str(item.get("version", "")),
                lease_id=item.get("lease_id"),
                stale=bool(item.get("stale", False)),
            )
        return out
