"""The ``vault-transit`` seal: the root key is wrapped by an OpenBao/Vault transit key.

The wrapped root key (transit ciphertext, useless without the transit key) lives in a file.
``root_key`` unwraps it through the broker; when OpenBao is unreachable it raises
``SealedError`` so the server stays sealed (503) — the server keeps calling the barrier's
``unseal`` (see ``unseal_until_ready``) and unseals by itself once OpenBao answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from vaultside.broker.auth import BrokerAuth
from vaultside.broker.vault import VaultClient
from vaultside.clock import Clock, SystemClock
from vaultside.config.settings import Settings
from vaultside.errors import (
    ConflictError,
    InvalidRequestError,
    SealedError,
    UpstreamError,
    UpstreamUnavailableError,
)
from vaultside.retry import Backoff

log = logging.getLogger(__name__)

ROOT_KEY_BYTES = 32


class TransitSeal:
    """A ``Seal`` whose root key is unwrapped by a transit key of a named broker."""

    kind = "vault-transit"

    def __init__(
        self,
        client: VaultClient,
        auth: BrokerAuth,
        *,
        mount: str,
        key: str,
        wrapped_key_file: Path,
        auto_init: bool = False,
    ) -> None:
        self._client = client
        self._auth = auth
        self._mount = mount
        self._key = key
        self._path = wrapped_key_file
        self._auto_init = auto_init

    def __repr__(self) -> str:
        return f"TransitSeal(broker={self._client.name!r}, key={self._mount}/{self._key})"

    async def init(self) -> None:
        """Create, wrap and store a random root key; ``ConflictError`` if one exists."""
        if self._path.exists():
            raise ConflictError(f"wrapped root key already exists at {str(self._path)!r}")
        # SECURITY: the plaintext root key never touches disk; only transit ciphertext does.
        root = secrets.token_bytes(ROOT_KEY_BYTES)
        client = self._client
        wrapped = await self._auth.call(
            lambda: client.transit_encrypt(self._mount, self._key, root)
        )
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
        client = self._client
        try:
            root = await self._auth.call(
                lambda: client.transit_decrypt(self._mount, self._key, wrapped)
            )
        except UpstreamUnavailableError as exc:
            raise SealedError(f"transit seal: {exc.message}") from exc
        except UpstreamError as exc:
            raise SealedError(f"transit seal: cannot unwrap the root key ({exc.message})") from exc
        if len(root) != ROOT_KEY_BYTES:
            raise SealedError("transit seal: unwrapped root key has the wrong length")
        return root


def build_transit_seal(settings: Settings, clock: Clock | None = None) -> TransitSeal:
    """The ``vault-transit`` seal from settings: ``seal.transit_broker`` names a broker.

    ``seal.key_file`` holds the transit-wrapped root key; it is created on first start.
    """
    cfg = settings.seal
    name = cfg.transit_broker
    if not name or name not in settings.brokers:
        known = ", ".join(sorted(settings.brokers)) or "none"
        raise InvalidRequestError(
            f"seal.kind is vault-transit but seal.transit_broker {name!r} is not a configured "
            f"broker (configured: {known})"
        )
    client = VaultClient(name, settings.brokers[name], max_workers=2)
    auth = BrokerAuth(client, settings.brokers[name], clock or SystemClock())
    return TransitSeal(
        client,
        auth,
        mount=cfg.transit_mount,
        key=cfg.transit_key,
        wrapped_key_file=settings.resolve(cfg.key_file),
        auto_init=True,
    )


async def unseal_until_ready(
    unseal: Callable[[], Awaitable[None]], clock: Clock, *, interval: float = 2.0
) -> None:
    """Call ``unseal`` until it stops raising ``SealedError`` (run as a background task).

    Waits grow from ``interval / 4`` to at most ``interval``, with full jitter
    (``vaultside.retry``): replicas whose OpenBao went away together do not retry together.
    """
    backoff = Backoff(base=interval / 4, cap=interval)
    while True:
        try:
            await unseal()
            log.info("unsealed")
            return
        except asyncio.CancelledError:
            raise
        except SealedError as exc:
            delay = backoff.next()
            log.warning("still_sealed", extra={"reason": exc.message, "retry_in": round(delay, 3)})
            await clock.sleep(delay)
