"""The conformance suite every ``StorageBackend`` runs (memory, SQLite, PostgreSQL, the barrier,
a prefix view). Plain async checks: no test framework needed to import or run it.

Each check is ``async def check_x(case: Case) -> None`` and fails with ``AssertionError``.
``CHECKS`` lists them; ``run_suite`` runs them all against fresh backends and returns the
failures. The pytest parametrisation lives in ``tests/`` (one ``test_conformance[x]`` per
check and backend)::

    async def make(clock: FakeClock) -> StorageBackend:   # fresh, empty, opened
        b = MyStorage(..., clock=clock)                    # lease expiry must follow ``clock``
        await b.open()
        return b

    async def reopen(backend: StorageBackend) -> StorageBackend:  # same data, new instance
        await backend.close()
        b = MyStorage(...)
        await b.open()
        return b

    failures = await run_suite(make, reopen)

Requirements beyond ``vaultside.storage.base``: ``close`` is idempotent; revisions are never
reused for a key (a delete then put yields a new revision, so stale compare-and-set fails);
``list`` sorts by Unicode code point; ``prefix`` is a plain string prefix (``%``/``_`` are not
wildcards).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from vaultside.clock import FakeClock
from vaultside.errors import ConflictError
from vaultside.storage.base import Delete, Put, StorageBackend

ODD_KEYS = (
    "with space/x",
    "ümlaut/ñ",
    "pct%_under/x",
    "glob*?[ab]/x",
    "quote'dq\"/x",
    "back\\slash",
    "日本/キー",
    "emoji/\U0001f511",
    "semi;colon:/x",
    "a" * 1000,
)

Reopen = Callable[[StorageBackend], Awaitable[StorageBackend]]
Make = Callable[[FakeClock], Awaitable[StorageBackend]]


@dataclass(frozen=True, slots=True)
class Case:
    """What one check gets: an opened backend, the fake clock its leases follow, and how to
    reopen it (close it, return a new opened instance over the same data)."""

    backend: StorageBackend
    clock: FakeClock
    reopen: Reopen


@contextlib.contextmanager
def raises(kind: type[BaseException]) -> Iterator[None]:
    """Assert that the block raises ``kind`` (like ``pytest.raises``, without pytest)."""
    try:
        yield
    except kind:
        return
    raise AssertionError(f"{kind.__name__} not raised")


async def check_get_missing(case: Case) -> None:
    backend = case.backend
    assert await backend.get("nope/missing") is None


async def check_put_get_round_trip(case: Case) -> None:
    backend = case.backend
    rev = await backend.put("a/b", b"\x00value\xff")
    rec = await backend.get("a/b")
    assert rec is not None
    assert rec.value == b"\x00value\xff"
    assert rec.revision == rev
    assert rev > 0


async def check_empty_value(case: Case) -> None:
    backend = case.backend
    await backend.put("empty", b"")
    rec = await backend.get("empty")
    assert rec is not None
    assert rec.value == b""


async def check_put_changes_revision(case: Case) -> None:
    backend = case.backend
    r1 = await backend.put("k", b"1")
    r2 = await backend.put("k", b"2")
    assert r1 != r2
    rec = await backend.get("k")
    assert rec is not None
    assert (rec.value, rec.revision) == (b"2", r2)


async def check_delete(case: Case) -> None:
    backend = case.backend
    await backend.put("k", b"1")
    assert await backend.delete("k") is True
    assert await backend.get("k") is None
    assert await backend.delete("k") is False


async def check_revision_not_reused_after_delete(case: Case) -> None:
    backend = case.backend
    r1 = await backend.put("k", b"1")
    await backend.delete("k")
    r2 = await backend.put("k", b"2")
    assert r2 != r1
    with raises(ConflictError):
        await backend.put("k", b"3", expect_revision=r1)


async def check_list_ordering_and_prefix(case: Case) -> None:
    backend = case.backend
    keys = ["b/1", "a/2", "a/10", "a", "ab", "a/1", "a/1/x", "c"]
    for k in keys:
        await backend.put(k, b"v")
    assert await backend.list("") == sorted(keys)
    assert await backend.list("a/") == ["a/1", "a/1/x", "a/10", "a/2"]
    assert await backend.list("a") == ["a", "a/1", "a/1/x", "a/10", "a/2", "ab"]
    assert await backend.list("zz") == []


async def check_list_prefix_is_literal(case: Case) -> None:
    backend = case.backend
    for k in ("a_%x", "abcx", "a_b", "aZ%x"):
        await backend.put(k, b"v")
    assert await backend.list("a_%") == ["a_%x"]
    assert await backend.list("a_") == ["a_%x", "a_b"]


async def check_list_after_and_limit(case: Case) -> None:
    backend = case.backend
    keys = [f"p/{i:03d}" for i in range(25)]
    for k in reversed(keys):
        await backend.put(k, b"v")
    await backend.put("q/000", b"v")
    assert await backend.list("p/", limit=10) == keys[:10]
    assert await backend.list("p/", after="p/009", limit=10) == keys[10:20]
    assert await backend.list("p/", after="p/019") == keys[20:]
    assert await backend.list("p/", after="p/024") == []
    assert await backend.list("p/", after="p/0095") == keys[10:]
    assert await backend.list("p/", limit=0) == []
    paged: list[str] = []
    after = ""
    while page := await backend.list("p/", after=after, limit=7):
        paged += page
        after = page[-1]
    assert paged == keys


async def check_cas_put(case: Case) -> None:
    backend = case.backend
    r1 = await backend.put("k", b"1", expect_revision=0)
    with raises(ConflictError):
        await backend.put("k", b"x", expect_revision=0)
    with raises(ConflictError):
        await backend.put("k", b"x", expect_revision=r1 + 1000)
    r2 = await backend.put("k", b"2", expect_revision=r1)
    with raises(ConflictError):
        await backend.put("k", b"x", expect_revision=r1)
    rec = await backend.get("k")
    assert rec is not None
    assert (rec.value, rec.revision) == (b"2", r2)
    with raises(ConflictError):
        await backend.put("absent", b"x", expect_revision=r2)
    assert await backend.get("absent") is None


async def check_cas_delete(case: Case) -> None:
    backend = case.backend
    r1 = await backend.put("k", b"1")
    with raises(ConflictError):
        await backend.delete("k", expect_revision=r1 + 1000)
    assert await backend.get("k") is not None
    assert await backend.delete("k", expect_revision=r1) is True
    assert await backend.delete("k", expect_revision=0) is False


async def check_batch_applies_all(case: Case) -> None:
    backend = case.backend
    r_old = await backend.put("old", b"o")
    await backend.write_batch(
        [Put("x", b"1", 0), Put("y", b"2"), Delete("old", expect_revision=r_old)]
    )
    x, y = await backend.get("x"), await backend.get("y")
    assert x is not None and x.value == b"1"
    assert y is not None and y.value == b"2"
    assert await backend.get("old") is None


async def check_batch_is_all_or_nothing(case: Case) -> None:
    backend = case.backend
    r_meta = await backend.put("meta", b"m1")
    await backend.put("gone", b"g")
    with raises(ConflictError):
        await backend.write_batch(
            [
                Put("new", b"n"),
                Delete("gone"),
                Put("meta", b"m2", expect_revision=r_meta + 1000),
            ]
        )
    assert await backend.get("new") is None
    assert await backend.get("gone") is not None
    meta = await backend.get("meta")
    assert meta is not None and meta.value == b"m1"
    with raises(ConflictError):
        await backend.write_batch([Put("new", b"n"), Delete("gone", expect_revision=1 << 40)])
    assert await backend.get("new") is None


async def check_concurrent_cas_exactly_one_wins(case: Case) -> None:
    backend = case.backend
    rev = await backend.put("race", b"start")

    async def attempt(i: int) -> int | None:
        try:
            return await backend.put("race", f"w{i}".encode(), expect_revision=rev)
        except ConflictError:
            return None

    results = await asyncio.gather(*(attempt(i) for i in range(50)))
    winners = [i for i, r in enumerate(results) if r is not None]
    assert len(winners) == 1
    rec = await backend.get("race")
    assert rec is not None and rec.value == f"w{winners[0]}".encode()


async def check_concurrent_create_exactly_one_wins(case: Case) -> None:
    backend = case.backend

    async def attempt(i: int) -> bool:
        try:
            await backend.write_batch([Put("c/meta", b"%d" % i, 0), Put(f"c/data/{i}", b"d")])
        except ConflictError:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(40)))
    assert sum(results) == 1
    assert len(await backend.list("c/data/")) == 1


async def check_concurrent_independent_puts(case: Case) -> None:
    backend = case.backend
    revs = await asyncio.gather(*(backend.put(f"many/{i:04d}", b"%d" % i) for i in range(300)))
    assert len(set(revs)) == 300
    assert len(await backend.list("many/")) == 300
    rec = await backend.get("many/0123")
    assert rec is not None and rec.value == b"123"


async def check_locks(case: Case) -> None:
    backend = case.backend
    clock = case.clock
    assert await backend.try_lock("leader", "a", 10) is True
    assert await backend.try_lock("leader", "b", 10) is False
    assert await backend.try_lock("other", "b", 10) is True
    await clock.advance(8)
    assert await backend.try_lock("leader", "a", 10) is True  # renew to t=18
    await clock.advance(8)
    assert await backend.try_lock("leader", "b", 10) is False
    await clock.advance(3)  # t=19: a's lease expired
    assert await backend.try_lock("leader", "b", 10) is True
    assert await backend.try_lock("leader", "a", 10) is False
    await backend.unlock("leader", "a")  # not the holder: no effect
    assert await backend.try_lock("leader", "c", 10) is False
    await backend.unlock("leader", "b")
    assert await backend.try_lock("leader", "c", 10) is True


async def check_concurrent_lock_one_holder(case: Case) -> None:
    backend = case.backend
    results = await asyncio.gather(*(backend.try_lock("l", f"h{i}", 30) for i in range(20)))
    assert sum(results) == 1


async def check_reopen_keeps_data(case: Case) -> None:
    backend = case.backend
    rev = await backend.put("persist/me", b"durable")
    await backend.put("persist/del", b"x")
    await backend.delete("persist/del")
    again = await case.reopen(backend)
    try:
        rec = await again.get("persist/me")
        assert rec is not None
        assert (rec.value, rec.revision) == (b"durable", rev)
        assert await again.get("persist/del") is None
        assert await again.put("persist/me", b"2", expect_revision=rev) != rev
    finally:
        await again.close()


async def check_large_value(case: Case) -> None:
    backend = case.backend
    big = os.urandom(4 * 1024 * 1024 + 3)
    await backend.put("big", big)
    rec = await backend.get("big")
    assert rec is not None and rec.value == big


async def check_odd_keys(case: Case) -> None:
    backend = case.backend
    for i, key in enumerate(ODD_KEYS):
        await backend.put(key, b"%d" % i)
    for i, key in enumerate(ODD_KEYS):
        rec = await backend.get(key)
        assert rec is not None and rec.value == b"%d" % i, key
    assert await backend.list("") == sorted(ODD_KEYS)
    assert await backend.list("日本/") == ["日本/キー"]
    assert await backend.list("glob*?[") == ["glob*?[ab]/x"]


Check = Callable[[Case], Awaitable[None]]

CHECKS: tuple[Check, ...] = tuple(
    fn for name, fn in sorted(globals().items()) if name.startswith("check_") and callable(fn)
)


def check_id(check: Check) -> str:
    """The short name of a check (``check_delete`` -> ``delete``), for test ids."""
    return getattr(check, "__name__", "check").removeprefix("check_")


async def run_check(check: Check, make: Make, reopen: Reopen) -> None:
    """Run one check on a fresh backend from ``make`` (closed afterwards); raises on failure."""
    clock = FakeClock()
    backend = await make(clock)
    try:
        await check(Case(backend, clock, reopen))
    finally:
        await backend.close()


async def run_suite(make: Make, reopen: Reopen) -> list[tuple[str, str]]:
    """Run every check on a fresh backend; the (check, traceback) of each failure."""
    failures: list[tuple[str, str]] = []
    for check in CHECKS:
        try:
            await run_check(check, make, reopen)
        except Exception:  # a failed check is reported, the next one still runs
            failures.append((check_id(check), traceback.format_exc()))
    return failures
