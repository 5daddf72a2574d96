"""Policy globs, parsing, the store's built-ins and cache, and authorizer decisions."""

from __future__ import annotations

import time

import pytest

from vaultside.auth.policy import (
    CAPABILITIES,
    Authorizer,
    Policy,
    PolicyStore,
    compile_glob,
)
from vaultside.auth.tokens import TokenInfo
from vaultside.clock import FakeClock
from vaultside.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from vaultside.storage.base import StorageBackend
from vaultside.storage.memory import MemoryStorage

GLOB_TABLE: list[tuple[str, str, bool]] = [
    ("secrets/app/db", "secrets/app/db", True),
    ("secrets/app/db", "secrets/app/db2", False),
    ("secrets/app/db", "secrets/app", False),
    ("secrets/app/db", "secrets/app/db/x", False),
    ("secrets/*/db", "secrets/app/db", True),
    ("secrets/*/db", "secrets//db", False),
    ("secrets/*/db", "secrets/a/b/db", False),
    ("secrets/*/db", "secrets/app/dbx", False),
    ("secrets/app-*/db", "secrets/app-1/db", True),
    ("secrets/app-*/db", "secrets/app/db", False),
    ("secrets/app/*", "secrets/app/x", True),
    ("secrets/app/*", "secrets/app/x/y/z", True),
    ("secrets/app/*", "secrets/app/", True),
    ("secrets/app/*", "secrets/app", False),
    ("secrets/app/*", "secrets/apple/x", False),
    ("secrets/app*", "secrets/apple/x", True),
    ("secrets/**", "secrets", True),
    ("secrets/**", "secrets/a/b", True),
    ("secrets/**", "secretsx", False),
    ("secrets/**/db", "secrets/db", True),
    ("secrets/**/db", "secrets/a/b/db", True),
    ("secrets/**/db", "secrets/a/b/dbx", False),
    ("secrets/**/db", "secrets/a/db/x", False),
    ("**/db", "db", True),
    ("**/db", "a/b/db", True),
    ("**/db", "a/b/xdb", False),
    ("**", "anything/at/all", True),
    ("*", "a/b", True),
    ("secrets/a.b", "secrets/aXb", False),
    ("secrets/a.b", "secrets/a.b", True),
]


@pytest.mark.parametrize(("pattern", "path", "matches"), GLOB_TABLE)
def test_glob_table(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).fullmatch(path)) is matches


@pytest.mark.parametrize(
    "pattern",
    ["", "a//b", "/a", "a/", "a/**/**/b", "a**", "a/b**c", "a/$x", "a/../b", "a/*/*/*/*/*"],
)
def test_bad_globs_rejected(pattern: str) -> None:
    if pattern == "a/../b":  # ".." is literal text, not traversal: allowed but only literal
        assert compile_glob(pattern).fullmatch("a/../b")
        assert not compile_glob(pattern).fullmatch("b")
        return
    with pytest.raises(InvalidRequestError):
        compile_glob(pattern)


def test_from_json_names_bad_field() -> None:
    cases = {
        "rules: must be a list": {"rules": "x"},
        "unknown field: extra": {"rules": [], "extra": 1},
        "rules[0].path": {"rules": [{"path": "a//b", "capabilities": ["read"]}]},
        "rules[1].capabilities[1]: unknown capability": {
            "rules": [
                {"path": "a", "capabilities": ["read"]},
                {"path": "b", "capabilities": ["read", "write"]},
            ]
        },
        "rules[0].capabilities: must be a non-empty list": {
            "rules": [{"path": "a", "capabilities": []}]
        },
        "rules[0]: unknown field: cap": {"rules": [{"path": "a", "cap": ["read"]}]},
    }
    for expected, body in cases.items():
        with pytest.raises(InvalidRequestError) as exc:
            Policy.from_json("p", body)
        assert expected in exc.value.message
    for bad_name in ("", "Upper", "a b", "../x", "x" * 129, "-x"):
        with pytest.raises(InvalidRequestError):
            Policy.from_json(bad_name, {"rules": []})


def test_round_trip() -> None:
    body = {"rules": [{"path": "secrets/app/*", "capabilities": ["list", "read"]}]}
    p = Policy.from_json("app", body)
    assert p.to_json() == {
        "name": "app",
        "rules": [{"path": "secrets/app/*", "capabilities": ["read", "list"]}],
    }
    assert Policy.from_json("app", {"rules": p.to_json()["rules"]}) == p


def _token(*policies: str) -> TokenInfo:
    return TokenInfo(
        accessor="A" * 24,
        policies=policies,
        display_name="",
        creation_time=0.0,
        expire_time=None,
        num_uses_left=None,
        parent_accessor=None,
        renewable=False,
        ttl=None,
    )


async def _authorizer(storage: StorageBackend, clock: FakeClock) -> tuple[PolicyStore, Authorizer]:
    store = PolicyStore(storage, clock=clock)
    await store.put(
        Policy.from_json(
            "app",
            {
                "rules": [
                    {"path": "secrets/app/*", "capabilities": ["read", "list"]},
                    {"path": "secrets/app/admin/*", "capabilities": ["deny"]},
                    {"path": "secrets/app/db", "capabilities": ["update"]},
                ]
            },
        )
    )
    await store.put(
        Policy.from_json(
            "ops", {"rules": [{"path": "secrets/**", "capabilities": ["read", "rotate"]}]}
        )
    )
    return store, Authorizer(store)


DECISIONS: list[tuple[tuple[str, ...], str, str, bool]] = [
    (("app",), "secrets/app/db", "read", True),
    (("app",), "secrets/app/db", "update", True),
    (("app",), "secrets/app/db", "delete", False),
    (("app",), "secrets/app/other", "update", False),
    (("app",), "secrets/app/admin/key", "read", False),  # deny wins within a policy
    (("app", "ops"), "secrets/app/admin/key", "read", False),  # deny wins across policies
    (("app", "ops"), "secrets/other/x", "rotate", True),
    (("app",), "secrets/other/x", "read", False),  # deny by default
    (("app",), "secrets/app/db", "write", False),  # unknown capability
    (("app",), "secrets/app/db", "deny", False),
    (("missing",), "secrets/app/db", "read", False),  # unknown policy grants nothing
    ((), "secrets/app/db", "read", False),
    (("root",), "sys/anything/at/all", "sudo", True),
    (("root",), "secrets/x", "frobnicate", False),
    (("default",), "auth/token/lookup-self", "read", True),
    (("default",), "auth/token/renew-self", "update", True),
    (("default",), "auth/token/create", "create", False),
]


@pytest.mark.parametrize(("policies", "path", "cap", "allowed"), DECISIONS)
async def test_decisions(
    any_storage: StorageBackend,
    clock: FakeClock,
    policies: tuple[str, ...],
    path: str,
    cap: str,
    allowed: bool,
) -> None:
    _, authz = await _authorizer(any_storage, clock)
    token = _token(*policies)
    if allowed:
        await authz.check(token, path, cap)
        assert cap in await authz.capabilities(token, path)
    else:
        with pytest.raises(PermissionDeniedError):
            await authz.check(token, path, cap)


async def test_capabilities_sets(clock: FakeClock) -> None:
    _, authz = await _authorizer(MemoryStorage(), clock)
    assert await authz.capabilities(_token("app"), "secrets/app/db") == {"read", "list", "update"}
    assert await authz.capabilities(_token("app"), "secrets/app/admin/x") == set()
    assert await authz.capabilities(_token("root"), "x") == set(CAPABILITIES) - {"deny"}


async def test_builtins_protected(clock: FakeClock) -> None:
    store = PolicyStore(MemoryStorage(), clock=clock)
    assert await store.list() == ["default", "root"]
    with pytest.raises(InvalidRequestError):
        await store.put(Policy.from_json("root", {"rules": []}))
    for name in ("root", "default"):
        with pytest.raises(InvalidRequestError):
            await store.delete(name)
    assert (await store.get("root")).rules[0].path == "**"
    with pytest.raises(NotFoundError):
        await store.get("nope")
    assert await store.delete("nope") is False
    await store.put(Policy.from_json("default", {"rules": []}))
    assert (await store.get("default")).rules == ()


async def test_cache_invalidated_locally_and_across_processes(clock: FakeClock) -> None:
    storage = MemoryStorage()
    store, authz = await _authorizer(storage, clock)
    token = _token("app")
    await authz.check(token, "secrets/app/db", "read")
    await store.put(Policy.from_json("app", {"rules": []}))  # local: immediate
    with pytest.raises(PermissionDeniedError):
        await authz.check(token, "secrets/app/db", "read")

    other = PolicyStore(storage, clock=clock)  # another process on the same storage
    other_authz = Authorizer(other)
    with pytest.raises(PermissionDeniedError):
        await other_authz.check(token, "secrets/app/db", "read")
    await store.put(
        Policy.from_json("app", {"rules": [{"path": "secrets/**", "capabilities": ["read"]}]})
    )
    await clock.advance(0.5)
    with pytest.raises(PermissionDeniedError):  # still within the allowed staleness
        await other_authz.check(token, "secrets/app/db", "read")
    await clock.advance(0.5)
    await other_authz.check(token, "secrets/app/db", "read")
    await store.delete("app")
    await clock.advance(1.0)
    with pytest.raises(PermissionDeniedError):
        await other_authz.check(token, "secrets/app/db", "read")


async def test_long_path_denied_fast(clock: FakeClock) -> None:
    store = PolicyStore(MemoryStorage(), clock=clock)
    await store.put(
        Policy.from_json("p", {"rules": [{"path": "**/a*a*a*c/x", "capabilities": ["read"]}]})
    )
    authz = Authorizer(store)
    start = time.monotonic()
    with pytest.raises(PermissionDeniedError):
        await authz.check(_token("p"), "a" * 2000 + "b", "read")
    with pytest.raises(PermissionDeniedError):
        await authz.check(_token("p"), "/".join(["a" * 100] * 5) + "/b", "read")
    assert time.monotonic() - start < 2.0
    await authz.check(_token("p"), "q/aXaYac/x", "read")
