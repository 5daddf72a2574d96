"""Routes storage change notifications to the caches that hold copies of those records.

Keys arrive as stored below the barrier (``logical/auth/token/<hash>``, ``core/keyring``);
this module is the one place that knows which cache each belongs to. ``None`` means
"anything may have changed" and clears every cache. The caches keep their own bounded
staleness, so this only makes invalidation faster (milliseconds instead of up to 1 s).

The caches are handed in as ``Invalidates`` (auth's ``TokenStore`` and ``PolicyStore`` are
two): cluster sits below the services and never imports them.
"""

from __future__ import annotations

import logging
from typing import Protocol

from vaultside.crypto.barrier import LOGICAL, Barrier
from vaultside.crypto.keyring import KEYRING_KEY
from vaultside.storage.notify import ChangeFeed

log = logging.getLogger(__name__)

_TOKEN = LOGICAL + "auth/token/"
_POLICY = LOGICAL + "auth/policy/"


class Invalidates(Protocol):
    """A cache that drops one entry (by its key below the cache's prefix) or, with None, all."""

    def invalidate(self, key: str | None = None, /) -> None:
        """Drop ``key`` (or everything)."""
        ...


class CacheInvalidator:
    """Subscribes to a ``ChangeFeed`` and drops the matching token, policy or keyring entry."""

    def __init__(
        self, feed: ChangeFeed, tokens: Invalidates, policies: Invalidates, barrier: Barrier
    ) -> None:
        self.feed = feed
        self._tokens = tokens
        self._policies = policies
        self._barrier = barrier
        feed.subscribe(self.changed)

    def changed(self, key: str | None) -> None:
        """Handle one notification (``None``: clear everything)."""
        if key is None:
            self._tokens.invalidate()
            self._policies.invalidate()
            self._barrier.keyring_changed()
        elif key.startswith(_TOKEN):
            self._tokens.invalidate(key[len(_TOKEN) :])
        elif key.startswith(_POLICY):
            self._policies.invalidate(key[len(_POLICY) :])
        elif key == KEYRING_KEY:
            self._barrier.keyring_changed()

    async def start(self) -> None:
        """Start the feed (it connects and reconnects in the background)."""
        await self.feed.start()

    async def close(self) -> None:
        """Stop the feed."""
        await self.feed.close()
