"""The local ``SecretSource``: resolves ``kv:`` references against the local KV store."""

from __future__ import annotations

from vaultside.broker.base import ResolvedSecret
from vaultside.errors import InvalidRequestError
from vaultside.kv.store import KVStore
from vaultside.refs import SecretRef


class KVSecretSource:
    """Resolves ``kv:<path>#<field>[@<version>]`` from a ``KVStore``.

    Raises ``NotFoundError`` (absent, deleted or destroyed version) and
    ``InvalidRequestError`` (wrong scheme, field missing from the secret).
    """

    def __init__(self, kv: KVStore) -> None:
        self._kv = kv

    async def resolve(self, ref: SecretRef) -> ResolvedSecret:
        """The referenced field of the current (or pinned) version."""
        if ref.scheme != "kv":
            raise InvalidRequestError(f"the local source cannot resolve {ref.scheme}: references")
        secret = await self._kv.get(ref.path, ref.version)
        value = secret.data.get(ref.field)
        if value is None:
            raise InvalidRequestError(f"secret {ref.path!r} has no field {ref.field!r}")
        return ResolvedSecret(ref=ref, value=value, version=str(secret.meta.version))
