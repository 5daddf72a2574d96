"""A broker's transit key as the ``TransitClient`` the ``vault-transit`` seal needs.

Calls go through the broker's own auth (token renewal, one retry on a 403 after re-login);
the hvac calls run off the event loop in ``VaultClient``.
"""

from __future__ import annotations

from vaultside.broker.auth import BrokerAuth
from vaultside.broker.vault import VaultClient


class BrokerTransit:
    """Encrypt / decrypt with ``<mount>/<key>`` of one Vault/OpenBao connection."""

    def __init__(self, client: VaultClient, auth: BrokerAuth, *, mount: str, key: str) -> None:
        self._client = client
        self._auth = auth
        self._mount = mount
        self._key = key

    def __repr__(self) -> str:
        return f"BrokerTransit(broker={self._client.name!r}, key={self._mount}/{self._key})"

    async def encrypt(self, plaintext: bytes) -> str:
        """Transit-encrypt ``plaintext``."""
        client = self._client
        return await self._auth.call(
            lambda: client.transit_encrypt(self._mount, self._key, plaintext)
        )

    async def decrypt(self, ciphertext: str) -> bytes:
        """Transit-decrypt ``ciphertext``."""
        client = self._client
        return await self._auth.call(
            lambda: client.transit_decrypt(self._mount, self._key, ciphertext)
        )
