"""CacheInvalidator: two "servers" (own caches) over one storage; notifications end staleness.

Without a notification the second server's caches stay stale for up to 1 s (its bound);
each test first shows that (so it can fail), then delivers the change key and shows the
cache is dropped at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.stores import new_key_file, open_barrier
from vaultside.auth.policy import Policy, PolicyStore, Rule
from vaultside.auth.records import hash_token
from vaultside.auth.tokens import TokenStore
from vaultside.clock import FakeClock
from vaultside.cluster.invalidation import CacheInvalidator
from vaultside.crypto import aead
from vaultside.crypto.barrier import LOGICAL, Barrier
from vaultside.errors import PermissionDeniedError
from vaultside.storage.notify import ChangeCallback
from vaultside.storage.sqlite import SqliteStorage
from vaultside.wiring.keyspace import cache_invalidator, view


@dataclass
class ManualFeed:
    """A ChangeFeed whose notifications the test delivers by hand."""

    callbacks: list[ChangeCallback] = field(default_factory=list)
    started: bool = False

    @property
    def connected(self) -> bool:
        return self.started

    def subscribe(self, callback: ChangeCallback) -> None:
        self.callbacks.append(callback)

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    def deliver(self, key: str | None) -> None:
        for callback in self.callbacks:
            callback(key)


@dataclass
class Server:
    barrier: Barrier
    tokens: TokenStore
    policies: PolicyStore
    storage: SqliteStorage


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Server, Server, ManualFeed, FakeClock]]:
    clock = FakeClock()
    key = new_key_file(tmp_path / "root.key")
    storage = SqliteStorage(tmp_path / "shared.db")
    await storage.open()
    servers = []
    for _ in range(2):
        barrier = await open_barrier(storage, key, clock=clock, open_storage=False)
        servers.append(
            Server(
                barrier,
                TokenStore(view(barrier, "tokens"), clock=clock),
                PolicyStore(view(barrier, "policies"), clock=clock),
                storage,
            )
        )
    feed = ManualFeed()
    b = servers[1]
    invalidator = cache_invalidator(feed, b.barrier, b.tokens, b.policies)
    await invalidator.start()
    yield servers[0], b, feed, clock
    await invalidator.close()
    for s in servers:
        await s.barrier.seal()
    await storage.close()


async def test_revoked_token_dropped_on_notification(
    two: tuple[Server, Server, ManualFeed, FakeClock],
) -> None:
    a, b, feed, _clock = two
    root, _ = await a.tokens.create_root()
    token, _ = await a.tokens.create(parent=await a.tokens.lookup(root), policies=["x"], ttl=3600)
    await b.tokens.authenticate(token)  # cached on b
    await a.tokens.revoke(token)
    await b.tokens.authenticate(token)  # still fresh in b's cache: the stale window
    feed.deliver("logical/kv/meta/unrelated")  # other keys leave the cache alone
    await b.tokens.authenticate(token)
    feed.deliver(LOGICAL + "auth/token/" + hash_token(token))
    with pytest.raises(PermissionDeniedError):
        await b.tokens.authenticate(token)


async def test_policy_change_dropped_on_notification(
    two: tuple[Server, Server, ManualFeed, FakeClock],
) -> None:
    a, b, feed, _clock = two
    await a.policies.put(Policy("team", (Rule("secrets/team/*", frozenset({"read"})),)))
    compiled = await b.policies.compiled("team")
    assert compiled is not None and "read" in compiled.capabilities("secrets/team/x")
    await a.policies.put(Policy("team", (Rule("secrets/other/*", frozenset({"read"})),)))
    stale = await b.policies.compiled("team")
    assert stale is not None and "read" in stale.capabilities("secrets/team/x")
    feed.deliver(LOGICAL + "auth/policy/team")
    fresh = await b.policies.compiled("team")
    assert fresh is not None and not fresh.capabilities("secrets/team/x")


async def test_keyring_rotation_elsewhere_moves_new_writes_to_the_new_term(
    two: tuple[Server, Server, ManualFeed, FakeClock],
) -> None:
    a, b, feed, _clock = two
    term = await a.barrier.rotate_key()
    await b.barrier.put("k", b"v1")
    raw = await _raw(b, "k")
    assert aead.read_term(raw) == term - 1  # b has not re-checked the keyring yet
    feed.deliver("core/keyring")
    await b.barrier.put("k", b"v2")
    assert aead.read_term(await _raw(b, "k")) == term


async def test_none_clears_everything(two: tuple[Server, Server, ManualFeed, FakeClock]) -> None:
    a, b, feed, _clock = two
    root, _ = await a.tokens.create_root()
    await b.tokens.authenticate(root)
    await a.tokens.revoke(root)
    await b.tokens.authenticate(root)
    feed.deliver(None)  # e.g. the feed reconnected and may have missed changes
    with pytest.raises(PermissionDeniedError):
        await b.tokens.authenticate(root)


async def _raw(server: Server, key: str) -> bytes:
    rec = await server.storage.get(LOGICAL + key)  # the ciphertext below the barrier
    assert rec is not None
    return rec.value


def test_routes_go_to_the_owner_of_the_longest_prefix() -> None:
    feed = ManualFeed()
    invalidator = CacheInvalidator(feed)
    got: list[tuple[str, str | None]] = []
    invalidator.route("logical/auth/", lambda k: got.append(("auth", k)))
    invalidator.route("logical/auth/policy/", lambda k: got.append(("policy", k)))
    invalidator.route("core/keyring", lambda k: got.append(("keyring", k)))
    with pytest.raises(ValueError, match="owner"):
        invalidator.route("logical/auth/", lambda k: None)
    feed.deliver("logical/auth/policy/team")
    feed.deliver("logical/auth/token/abc")
    feed.deliver("logical/auth/jwt/role/r")  # nobody registered auth/jwt/: auth/ owns it
    feed.deliver("logical/kv/meta/x")  # no owner: nothing
    feed.deliver("core/keyring")
    assert got == [
        ("policy", "team"),
        ("auth", "token/abc"),
        ("auth", "jwt/role/r"),
        ("keyring", ""),
    ]
    got.clear()
    feed.deliver(None)
    assert sorted(got, key=str) == [("auth", None), ("keyring", None), ("policy", None)]
