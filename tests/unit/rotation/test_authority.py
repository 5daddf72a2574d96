"""Authority: what setting a policy needs, and runs re-checked against the setter's token."""

from __future__ import annotations

import json

import pytest

from vaultside.auth.policy import Policy, PolicyStore
from vaultside.auth.records import TokenInfo
from vaultside.auth.tokens import TokenStore
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.errors import PermissionDeniedError
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import needs
from vaultside.rotation.policy import parse_policy
from vaultside.rotation.service import RotationService


def _doc(target: dict[str, object]) -> dict[str, object]:
    return {"every": "1h", "generator": {"kind": "password"}, "target": target}


def test_needs_lists_everything_the_rotation_touches() -> None:
    pg = parse_policy(
        _doc({"kind": "postgres", "admin_dsn_ref": "vault:corp/kv/pg#dsn", "roles": ["app"]})
    )
    got = {(n.path, n.capability) for n in needs("app/db", pg, exists=True)}
    assert got == {("secrets/app/db", "update"), ("broker/corp/kv/pg", "read")}
    hook = parse_policy(_doc({"kind": "webhook", "name": "ops"}))
    got = {(n.path, n.capability) for n in needs("app/db", hook, exists=False)}
    assert got == {
        ("secrets/app/db", "create"),
        ("secrets/app/db", "read"),
        ("rotation/targets/ops", "sudo"),
    }
    vkv = parse_policy(_doc({"kind": "vault-kv", "broker": "corp", "mount": "kv", "path": "a"}))
    assert ("broker/corp/kv/a", "update") in {
        (n.path, n.capability) for n in needs("x", vkv, exists=True)
    }


async def _narrow(
    tokens: TokenStore, policies: PolicyStore, rules: list[dict[str, object]]
) -> TokenInfo:
    await policies.put(Policy.from_json("narrow", {"rules": rules}))
    return (await tokens.create(parent=None, policies=["narrow"], ttl=3600))[1]


RULES: list[dict[str, object]] = [
    {"path": "rotation/app/*", "capabilities": ["update", "read"]},
    {"path": "secrets/app/*", "capabilities": ["create", "update", "read"]},
]


async def test_set_policy_refuses_what_the_caller_cannot_do(
    service: RotationService, tokens: TokenStore, policies: PolicyStore, kv: KVStore
) -> None:
    caller = await _narrow(tokens, policies, RULES)
    await kv.put("infra/pg", {"dsn": "postgresql://a:b@127.0.0.1:1/x"})
    pg = _doc({"kind": "postgres", "admin_dsn_ref": "kv:infra/pg#dsn", "roles": ["app"]})
    with pytest.raises(PermissionDeniedError, match="read on secrets/infra/pg"):
        await service.set_policy("app/db", pg, by=caller)
    with pytest.raises(PermissionDeniedError, match="create/update on secrets/other/db"):
        await service.set_policy("other/db", _doc({"kind": "kv"}), by=caller)
    with pytest.raises(PermissionDeniedError, match="sudo on rotation/targets/ops"):
        await service.set_policy("app/db", _doc({"kind": "command", "name": "ops"}), by=caller)
    await service.set_policy("app/db", _doc({"kind": "kv"}), by=caller)
    record = await service.store.get_record("app/db")
    assert record.grant is not None and record.grant.accessor == caller.accessor
    assert record.grant.policies == caller.policies


async def test_runs_fail_closed_once_the_authority_is_gone(
    service: RotationService, tokens: TokenStore, policies: PolicyStore, kv: KVStore
) -> None:
    caller = await _narrow(tokens, policies, RULES)
    await kv.put("app/db", {"password": "old"})
    await service.set_policy("app/db", _doc({"kind": "kv"}), by=caller)
    assert (await service.rotate_now("app/db")).result == "ok"
    await policies.put(Policy.from_json("narrow", {"rules": RULES[:1]}))
    entry = await service.rotate_now("app/db")
    assert entry.result == "failed" and entry.step == "authorize"
    assert (
        entry.error is not None and "no longer holds create/update on secrets/app/db" in entry.error
    )
    await policies.put(Policy.from_json("narrow", {"rules": RULES}))
    assert (await service.rotate_now("app/db")).result == "ok"
    await tokens.revoke_accessor(caller.accessor)
    entry = await service.rotate_now("app/db")
    assert entry.result == "failed" and entry.error is not None and "revoked" in entry.error
    assert (await kv.read_metadata("app/db")).current_version == 3


async def test_policies_stored_by_an_older_version_are_refused_not_run(
    service: RotationService, root: TokenInfo, kv: KVStore, clock: FakeClock, barrier: Barrier
) -> None:
    """An API-set argv (old format) and a policy without a grant never run; others still do."""
    storage = barrier  # written as an older version did: full keys, straight to the barrier
    argv = _doc({"kind": "command", "argv": ["/bin/sh", "-c", "exit 0"]})
    await storage.put("rotation/policy/old/argv", json.dumps(argv).encode())
    await storage.put("rotation/policy/old/nogrant", json.dumps(_doc({"kind": "kv"})).encode())
    await service.set_policy("new/ok", _doc({"kind": "kv"}), by=root)
    await service.scheduler.tick()
    await clock.advance(3600)
    await service.scheduler.tick()
    assert (await kv.read_metadata("new/ok")).current_version == 1
    assert not await kv.exists("old/argv") and not await kv.exists("old/nogrant")
    [argv_run] = await service.history("old/argv")
    assert argv_run.step == "authorize" and "no longer valid" in (argv_run.error or "")
    [nogrant_run] = await service.history("old/nogrant")
    assert nogrant_run.step == "authorize" and "no recorded authority" in (nogrant_run.error or "")
