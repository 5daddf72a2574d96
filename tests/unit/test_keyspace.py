"""The storage key space: wiring's one table, the stored keys it produces (unchanged from the
layout before views existed), and that no other module spells a storage prefix."""

from __future__ import annotations

import ast
from pathlib import Path

from vaultside.auth.policy import Policy, Rule
from vaultside.auth.records import hash_token
from vaultside.auth.tidy import TokenTidier
from vaultside.clock import FakeClock
from vaultside.config.settings import Settings
from vaultside.crypto.seal import init_key_file
from vaultside.services import Services
from vaultside.wiring.keyspace import PREFIXES, lease, view
from vaultside.wiring.server import build_services

# Pinned: these strings are part of every existing data dir (the stored key and its AEAD
# AAD). Changing one orphans the records below it.
STORED_PREFIXES = {
    "kv": "kv/",
    "tokens": "auth/",
    "policies": "auth/policy/",
    "jwt_roles": "auth/jwt/role/",
    "rotation": "rotation/",
    "scan": "scan/",
    "audit": "audit/",
    "brokers": "broker/",
    "leaders": "cluster/leaders/",
}

# Full keys and lease names that modules spelled before the views (each owner now spells only
# the part below its prefix). None of them may reappear outside wiring/keyspace.py.
FULL_NAMES = (
    "kv/meta/",
    "kv/data/",
    "auth/token/",
    "auth/accessor/",
    "auth/children/",
    "auth/policy/",
    "auth/jwt/role/",
    "auth/token-tidy",
    "rotation/policy/",
    "rotation/state/",
    "rotation/history/",
    "rotation/generation",
    "rotation/grace/",
    "rotation/consumers/",
    "rotation/journal/",
    "rotation/lock/",
    "rotation/scheduler",
    "scan/results/",
    "scan/periodic",
    "audit/chain-key",
    "audit/anchor/",
    "cluster/leaders/",
    "broker/",
    "logical/",
)
# Policy paths (what a token may do over the API), not storage keys, that share a spelling.
POLICY_PATHS = {"auth/token/lookup-self", "auth/token/renew-self", "auth/token/revoke-self"}
# Not scanned: the barrier owns the layout below itself (``logical/``, ``core/``); the HTTP
# side (routes, CLI, client) spells API paths such as ``auth/token/create``, never storage
# keys; ``broker/<name>/<mount>/<path>`` in these two is the policy path of a Vault read.
SKIP = ("wiring/keyspace.py", "crypto/barrier.py", "api/", "cli/", "client/")
POLICY_PATH_MODULES = ("refs.py", "rotation/authority.py")


def test_the_table_is_pinned_and_every_prefix_has_one_owner() -> None:
    assert PREFIXES == STORED_PREFIXES
    assert len(set(PREFIXES.values())) == len(PREFIXES)
    assert all(p.endswith("/") and not p.startswith("/") for p in PREFIXES.values())


def _spelled(root: Path) -> list[str]:
    """``file:line: string`` for every string literal (docstrings aside) of the package that
    starts with a full storage name of ``FULL_NAMES``."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(SKIP):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) in docstrings or node.value in POLICY_PATHS:
                continue
            if rel in POLICY_PATH_MODULES and node.value == "broker/":
                continue
            if node.value.startswith(FULL_NAMES):
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_spells_a_storage_prefix_but_the_table() -> None:
    import vaultside

    assert _spelled(Path(vaultside.__file__).parent) == []


async def _services(tmp_path: Path) -> Services:
    settings = Settings(data_dir=tmp_path)
    init_key_file(settings.resolve(settings.seal.key_file))
    services = build_services(settings, clock=FakeClock())
    await services.open()
    await services.barrier.unseal()
    return services


async def test_services_from_wiring_store_under_the_keys_of_before(tmp_path: Path) -> None:
    services = await _services(tmp_path)
    try:
        assert services.rotation is not None
        await services.kv.put("app/db", {"password": "generated-at-test-time"})
        root, info = await services.tokens.create_root()
        await services.policies.put(Policy("team", (Rule("secrets/*", frozenset({"read"})),)))
        doc = {"every": "1d", "generator": {"kind": "password"}, "target": {"kind": "kv"}}
        await services.rotation.set_policy("app/db", doc, by=info)
        for component in services.components:
            if isinstance(component, TokenTidier):
                await component.tick()
        raw = set(await services.storage.list("logical/"))
        assert {
            "logical/kv/meta/app/db",
            "logical/kv/data/app/db/1",
            f"logical/auth/token/{hash_token(root)}",
            f"logical/auth/accessor/{info.accessor}",
            "logical/auth/policy/team",
            "logical/rotation/policy/app/db",
            "logical/rotation/generation",
            "logical/cluster/leaders/token-tidy",
        } <= raw
        assert all(k.startswith(tuple("logical/" + p for p in PREFIXES.values())) for k in raw)
        held = await services.barrier.lock_holder("auth/token-tidy")
        assert held is not None
        leases = {ref.job: ref.lease for ref in services.leader_jobs}
        assert leases["token-tidy"] == "auth/token-tidy" == lease("tokens", "token-tidy")
        assert leases["rotation-scheduler"] == "rotation/scheduler"
        assert leases["scan-periodic"] == "scan/periodic"
        assert view(services.barrier, "audit").stored_key("chain-key") == "logical/audit/chain-key"
    finally:
        await services.barrier.close()
