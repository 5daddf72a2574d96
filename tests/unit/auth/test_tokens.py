"""Token lifecycle: create, authenticate, expire, uses, renew, revoke cascade, stored form."""

from __future__ import annotations

import asyncio
import hmac
import re

import pytest

from vaultside.auth import tokens as tokens_mod
from vaultside.auth.tokens import TokenInfo, TokenStore, hash_token
from vaultside.clock import FakeClock
from vaultside.errors import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from vaultside.storage.base import StorageBackend
from vaultside.storage.memory import MemoryStorage
from vaultside.wiring.keyspace import view


def test_memory_storage_is_a_backend() -> None:
    assert isinstance(MemoryStorage(), StorageBackend)


async def test_root_token_lifecycle(any_storage: StorageBackend, clock: FakeClock) -> None:
    store = TokenStore(any_storage, clock=clock)
    token, info = await store.create_root()
    assert re.fullmatch(r"vs\.[A-Za-z0-9]{43}", token)
    assert info.policies == ("root",)
    assert info.expire_time is None and info.ttl is None and info.parent_accessor is None
    await clock.advance(10 * 365 * 86400)
    assert (await store.authenticate(token)).accessor == info.accessor
    assert (await store.lookup(token)) == info
    assert (await store.lookup_accessor(info.accessor)) == info
    await store.revoke(token)
    with pytest.raises(PermissionDeniedError):
        await store.authenticate(token)
    with pytest.raises(NotFoundError):
        await store.lookup_accessor(info.accessor)


async def test_child_token_gets_default_policy_and_json(
    any_storage: StorageBackend, clock: FakeClock
) -> None:
    store = TokenStore(any_storage, clock=clock)
    _, root = await store.create_root()
    token, info = await store.create(
        parent=root, policies=["app", "app"], ttl=3600, display_name="ci", meta={"team": "x"}
    )
    assert info.policies == ("app", "default")
    assert info.expire_time == clock.now() + 3600
    assert info.parent_accessor == root.accessor
    doc = info.to_json()
    assert doc["expire_time"] == "2023-11-14T23:13:20.000000Z"  # vaultside.clock.rfc3339
    assert doc["meta"] == {"team": "x"} and doc["num_uses_left"] is None
    assert token not in repr(info) and token not in str(doc)


async def test_expired_token_fails(any_storage: StorageBackend, clock: FakeClock) -> None:
    store = TokenStore(any_storage, clock=clock)
    token, info = await store.create(parent=None, policies=["app"], ttl=60)
    assert (await store.authenticate(token)).accessor == info.accessor  # now cached
    await clock.advance(59.9)
    await store.authenticate(token)
    await clock.advance(0.1)
    with pytest.raises(PermissionDeniedError):
        await store.authenticate(token)
    with pytest.raises(PermissionDeniedError):
        await store.lookup(token)


async def test_non_root_token_without_ttl_gets_default_ttl(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock, default_ttl=100, max_ttl=1000)
    _, info = await store.create(parent=None, policies=["app"], ttl=None)
    assert info.expire_time == clock.now() + 100
    _, capped = await store.create(parent=None, policies=["app"], ttl=5000)
    assert capped.expire_time == clock.now() + 1000


async def test_max_uses_decrement_durably(any_storage: StorageBackend, clock: FakeClock) -> None:
    store = TokenStore(any_storage, clock=clock)
    token, info = await store.create(parent=None, policies=["app"], ttl=60, max_uses=3)
    assert info.num_uses_left == 3
    assert (await store.authenticate(token)).num_uses_left == 2
    # A second process (fresh cache, same storage) sees the durable count.
    other = TokenStore(any_storage, clock=clock)
    assert (await other.lookup(token)).num_uses_left == 2
    assert (await other.authenticate(token)).num_uses_left == 1
    assert (await store.authenticate(token)).num_uses_left == 0
    for s in (store, other):
        with pytest.raises(PermissionDeniedError):
            await s.authenticate(token)


async def test_max_uses_concurrent_uses_never_exceed_limit(clock: FakeClock) -> None:
    storage = MemoryStorage()
    a, b = TokenStore(storage, clock=clock), TokenStore(storage, clock=clock)
    token, _ = await a.create(parent=None, policies=["app"], ttl=60, max_uses=5)

    async def use(s: TokenStore) -> bool:
        try:
            await s.authenticate(token)
            return True
        except PermissionDeniedError:
            return False

    results = await asyncio.gather(*(use(a if i % 2 else b) for i in range(20)))
    assert sum(results) == 5


async def test_renew_extends_up_to_max(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock, max_ttl=1000)
    token, info = await store.create(parent=None, policies=["app"], ttl=100)
    await store.authenticate(token)
    await clock.advance(90)
    renewed = await store.renew(info.accessor, None)
    assert renewed.expire_time == clock.now() + 100
    await clock.advance(50)
    assert (await store.authenticate(token)).expire_time == renewed.expire_time
    big = await store.renew(info.accessor, 10_000)
    assert big.expire_time == info.creation_time + 1000  # never beyond max_ttl
    with pytest.raises(InvalidRequestError):
        await store.renew(info.accessor, -1)
    _, fixed = await store.create(parent=None, policies=["app"], ttl=10, renewable=False)
    with pytest.raises(InvalidRequestError):
        await store.renew(fixed.accessor, None)
    with pytest.raises(NotFoundError):
        await store.renew("A" * 24, None)


async def test_child_cannot_outlive_parent(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock)
    _, parent = await store.create(parent=None, policies=["app"], ttl=100)
    _, child = await store.create(parent=parent, policies=["app"], ttl=1000)
    assert child.expire_time == parent.expire_time
    assert (await store.renew(child.accessor, 5000)).expire_time == parent.expire_time


async def test_child_policies_must_be_subset(any_storage: StorageBackend, clock: FakeClock) -> None:
    store = TokenStore(any_storage, clock=clock)
    _, root = await store.create_root()
    _, parent = await store.create(parent=root, policies=["a", "b"], ttl=600)
    _, ok = await store.create(parent=parent, policies=["a"], ttl=60)
    assert ok.policies == ("a", "default")
    _, ok2 = await store.create(parent=parent, policies=[], ttl=60)
    assert ok2.policies == ("default",)
    for bad in (["c"], ["a", "c"], ["root"]):
        with pytest.raises(PermissionDeniedError):
            await store.create(parent=parent, policies=bad, ttl=60)
    _, anything = await store.create(parent=root, policies=["zzz"], ttl=60)
    assert anything.policies == ("default", "zzz")


async def test_limited_use_token_cannot_make_children(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock)
    _, limited = await store.create(parent=None, policies=["a"], ttl=60, max_uses=2)
    with pytest.raises(PermissionDeniedError):
        await store.create(parent=limited, policies=["a"], ttl=60)


async def test_revoke_cascades_recursively(any_storage: StorageBackend, clock: FakeClock) -> None:
    store = TokenStore(any_storage, clock=clock)
    root_tok, root = await store.create_root()
    toks: list[tuple[str, TokenInfo]] = []
    parent = root
    for _ in range(4):  # a chain root -> t0 -> t1 -> t2 -> t3
        tok, info = await store.create(parent=parent, policies=["a"], ttl=600)
        toks.append((tok, info))
        parent = info
    sib_tok, _ = await store.create(parent=toks[0][1], policies=["a"], ttl=600)
    for tok, _ in toks:
        await store.authenticate(tok)  # populate the cache
    await store.revoke_accessor(toks[1][1].accessor)
    await store.authenticate(toks[0][0])
    await store.authenticate(sib_tok)
    await store.authenticate(root_tok)
    for tok, _ in toks[1:]:
        with pytest.raises(PermissionDeniedError):
            await store.authenticate(tok)
    await store.revoke(root_tok)
    for tok in (toks[0][0], sib_tok, root_tok):
        with pytest.raises(PermissionDeniedError):
            await store.authenticate(tok)
    if isinstance(any_storage, MemoryStorage):
        assert not [k for k in any_storage.data if k.startswith("auth/")]
    await store.revoke(root_tok)  # idempotent
    await store.revoke("not-a-token")


async def test_revoked_parent_rejects_new_children(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock)
    _, parent = await store.create(parent=None, policies=["a"], ttl=600)
    await store.revoke_accessor(parent.accessor)
    with pytest.raises(PermissionDeniedError):
        await store.create(parent=parent, policies=["a"], ttl=60)


async def test_revoke_in_other_process_enforced_within_staleness(clock: FakeClock) -> None:
    storage = MemoryStorage()
    api, admin = TokenStore(storage, clock=clock), TokenStore(storage, clock=clock)
    token, info = await api.create(parent=None, policies=["a"], ttl=600)
    await api.authenticate(token)
    await admin.revoke_accessor(info.accessor)
    await clock.advance(0.5)
    await api.authenticate(token)  # served from cache: allowed staleness
    await clock.advance(0.5)
    with pytest.raises(PermissionDeniedError):
        await api.authenticate(token)


async def test_local_revoke_is_immediate(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock)
    token, info = await store.create(parent=None, policies=["a"], ttl=600)
    await store.authenticate(token)
    await store.revoke_accessor(info.accessor)
    with pytest.raises(PermissionDeniedError):
        await store.authenticate(token)


@pytest.mark.parametrize(
    "bad",
    ["", "vs.", "vs." + "a" * 42, "vs." + "a" * 44, "xx." + "a" * 43, "vs." + "!" * 43, None],
)
async def test_malformed_or_unknown_tokens_denied(bad: object, clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock)
    with pytest.raises(PermissionDeniedError):
        await store.authenticate(bad)  # type: ignore[arg-type]


async def test_wrong_token_same_shape_denied(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock)
    token, _ = await store.create_root()
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(PermissionDeniedError):
        await store.authenticate(wrong)


async def test_stored_form_contains_no_token(clock: FakeClock) -> None:
    storage = MemoryStorage()
    store = TokenStore(storage, clock=clock)
    root_tok, root = await store.create_root()
    tok, _ = await store.create(parent=root, policies=["a"], ttl=60, max_uses=3)
    await store.authenticate(tok)
    dump = b"".join(k.encode() + r.value for k, r in storage.data.items())
    for t in (root_tok, tok):
        assert t.encode() not in dump
        assert t[3:].encode() not in dump
        assert t[3:20].encode() not in dump
        assert hash_token(t).encode() in dump


async def test_constant_time_compare_is_used(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_mod.hmac, "compare_digest", spy)
    store = TokenStore(MemoryStorage(), clock=clock)
    token, _ = await store.create_root()
    await store.authenticate(token)  # from storage
    await store.authenticate(token)  # from cache
    assert len(calls) >= 2
    assert all(a == b == hash_token(token) for a, b in calls)


async def test_create_validates_arguments(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock)
    for kwargs in (
        {"policies": ["Bad Name"]},
        {"policies": ["a"], "ttl": 0},
        {"policies": ["a"], "max_uses": -1},
        {"policies": ["a"], "display_name": "x\n"},
        {"policies": ["a"], "meta": {"k": 1}},
    ):
        kwargs.setdefault("ttl", 60)
        with pytest.raises(InvalidRequestError):
            await store.create(parent=None, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        await store.lookup_accessor("../../etc")


async def test_cache_is_bounded(clock: FakeClock) -> None:
    store = TokenStore(MemoryStorage(), clock=clock, cache_size=3)
    toks = [(await store.create(parent=None, policies=["a"], ttl=60))[0] for _ in range(5)]
    for t in toks:
        await store.authenticate(t)
    assert len(store._cache) == 3


async def test_tidy_reclaims_expired_tokens_only(
    any_storage: StorageBackend, clock: FakeClock
) -> None:
    store = TokenStore(view(any_storage, "tokens"), clock=clock)  # as wiring builds it
    root_tok, _ = await store.create_root()
    short = [await store.create(parent=None, policies=["a"], ttl=10) for _ in range(7)]
    long_tok, _ = await store.create(parent=None, policies=["a"], ttl=1000)
    assert await store.tidy(page=3) == 0
    await clock.advance(11)
    assert await store.tidy(page=3) == 7
    assert await store.tidy() == 0
    await store.authenticate(root_tok)
    await store.authenticate(long_tok)
    for _, info in short:
        with pytest.raises(NotFoundError):
            await store.lookup_accessor(info.accessor)
    assert len(await any_storage.list("auth/token/")) == 2
    assert len(await any_storage.list("auth/accessor/")) == 2
