"""The ``vault-transit`` seal: the root key is wrapped by an OpenBao/Vault transit key.

The wrapped root key (transit ciphertext, useless without the transit key) lives in a file.
``root_key`` unwraps it through a ``TransitClient`` (wiring hands in one backed by a configured
broker); when OpenBao is unreachable it raises ``SealedError`` so the server stays sealed
(503) — the server keeps calling the barrier's ``unseal`` (``vaultside.crypto.unseal``) and
unseals by itself once OpenBao answers.

Errors callers should handle: ``SealedError`` (from ``root_key``), ``ConflictError`` and the
client's ``UpstreamError`` (from ``init``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from vaultside.errors import ConflictError, SealedError, UpstreamError, UpstreamUnavailableError

ROOT_KEY_BYTES = 32


class TransitClient(Protocol):
    """Encrypts and decrypts with one transit key (``UpstreamError`` when it cannot)."""

    async def encrypt(self, plaintext: bytes) -> str:
        """The ``vault:vN:...`` ciphertext of ``plaintext``."""
        ...

    async def decrypt(self, ciphertext: str) -> bytes:
        """The plaintext of a transit ciphertext."""
        ...


class TransitSeal:
    """A ``Seal`` whose root key is unwrapped by a transit key."""

    kind = "vault-transit"

    def __init__(
        self, client: TransitClient, *, wrapped_key_file: Path, auto_init: bool = False
    ) -> None:
        self._client = client
        self._path = wrapped_key_file
        self._auto_init = auto_init

    def __repr__(self) -> str:
        return f"TransitSeal({self._client!r})"

    async def init(self) -> None:
        """Create, wrap and store a random root key; ``ConflictError`` if one exists."""
        if self._path.exists():
            raise ConflictError(f"wrapped root key already exists at {str(self._path)!r}")
        # SECURITY: the plaintext root key never touches disk; only transit ciphertext does.
        root = secrets.token_bytes(ROOT_KEY_BYTES)
        wrapped = await self._client.encrypt(root)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(wrapped + "\n")

    async def root_key(self) -> bytes:
        """Unwrap the root key; ``SealedError`` with the reason if that is not possible now."""
        if self._auto_init and not self._path.exists():
            # A first start: there is no data yet that an older root key could protect.
            try:
                await self.init()
            except UpstreamError as exc:
                raise SealedError(
                    f"transit seal: cannot create the root key ({exc.message})"
                ) from exc
            except ConflictError:
                pass
        try:
            wrapped = self._path.read_text().strip()
        except FileNotFoundError as exc:
            raise SealedError(
                f"transit seal: no wrapped root key at {str(self._path)!r} (initialize first)"
            ) from exc
        try:
            root = await self._client.decrypt(wrapped)
        except UpstreamUnavailableError as exc:
            raise SealedError(f"transit seal: {exc.message}") from exc
        except UpstreamError as exc:
            raise SealedError(f"transit seal: cannot unwrap the root key ({exc.message})") from exc
        if len(root) != ROOT_KEY_BYTES:
            raise SealedError("transit seal: unwrapped root key has the wrong length")
        return root
