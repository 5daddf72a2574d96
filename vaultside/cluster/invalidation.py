"""Routes storage change notifications to the owner of the changed key, by prefix.

Keys arrive as stored below the barrier (``logical/auth/token/<hash>``, ``core/keyring``).
Each owner of a cache registers the stored prefix of its key space and a callback
(``route``); a notification goes to the owner of the LONGEST matching prefix, with the key
relative to that prefix, so prefixes may nest (``auth/`` holds tokens, ``auth/policy/`` is
the policy store's). This module knows no layout: wiring registers the routes. ``None`` means
"anything may have changed" and reaches every owner. The caches keep their own bounded
staleness, so this only makes invalidation faster (milliseconds instead of up to 1 s).

Owners are handed in as callbacks (auth's ``TokenStore.changed``, ``PolicyStore.invalidate``,
the barrier's keyring): cluster sits below the services and never imports them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vaultside.storage.notify import ChangeFeed  # asyncpg: only with PostgreSQL

log = logging.getLogger(__name__)

#: Called with the changed key relative to the owner's prefix, or None for "anything".
Invalidate = Callable[[str | None], None]


class CacheInvalidator:
    """Subscribes to a ``ChangeFeed`` and hands each changed key to the owner of its prefix."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed
        self._routes: dict[str, Invalidate] = {}
        feed.subscribe(self.changed)

    def route(self, prefix: str, invalidate: Invalidate) -> None:
        """Send changes of stored keys starting with ``prefix`` to ``invalidate``."""
        if prefix in self._routes:
            raise ValueError(f"the stored prefix {prefix!r} already has an owner")
        self._routes[prefix] = invalidate

    def changed(self, key: str | None) -> None:
        """Handle one notification (``None``: every owner clears everything)."""
        if key is None:
            for invalidate in self._routes.values():
                invalidate(None)
            return
        owner = max((p for p in self._routes if key.startswith(p)), key=len, default=None)
        if owner is not None:
            self._routes[owner](key[len(owner) :])

    async def start(self) -> None:
        """Start the feed (it connects and reconnects in the background)."""
        await self.feed.start()

    async def close(self) -> None:
        """Stop the feed."""
        await self.feed.close()
