"""Leaked current managed secrets → rotate-now, per-secret authorization, outcomes and audit.

A real stack: KVStore → Barrier → SqliteStorage, the real RotationService (kv target), the
real Scanner over a directory holding the leaked values, and a real AuditBroker.
"""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path

import pytest

from tests.stores import rotation_service
from vaultside.audit.hmac import AuditHasher
from vaultside.audit.sinks import AuditBroker, StdoutSink
from vaultside.auth.policy import Authorizer, PolicyStore
from vaultside.auth.records import TokenInfo
from vaultside.auth.tokens import TokenStore
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.service import RotationService
from vaultside.scan.base import Finding
from vaultside.scan.leaks import Requester, leaked_current, rotate_leaks
from vaultside.scan.scanner import Scanner
from vaultside.scan.service import ScanService, version_status
from vaultside.scan.sources.path import PathSource
from vaultside.wiring.keyspace import view

POLICY = {"every": "1d", "generator": {"kind": "password", "length": 24}, "target": {"kind": "kv"}}


@pytest.fixture
def stack(
    barrier: Barrier, clock: FakeClock, tokens: TokenStore
) -> tuple[KVStore, RotationService, FakeClock]:
    kv = KVStore(view(barrier, "kv"), clock=clock, default_max_versions=0)
    authority = RotationAuthority(
        tokens, Authorizer(PolicyStore(view(barrier, "policies"), clock=clock))
    )
    rotation = rotation_service(kv, barrier, clock, authority)
    return kv, rotation, clock


def _value() -> str:
    return "leak-" + secrets.token_urlsafe(18)


async def _scan(kv: KVStore, clock: FakeClock, root: Path) -> list[Finding]:
    svc = ScanService(values=kv, docker_factory=lambda: None, clock=clock)
    scanner = Scanner(known=await svc.known_index())
    return scanner.scan([PathSource(root)]).findings


def _requester(allowed: set[str]) -> Requester:
    async def may_rotate(path: str) -> bool:
        return path in allowed

    return Requester("acc-1", ("scanner",), may_rotate)


async def test_rotates_allowed_current_leaks_and_reports_the_rest(
    stack: tuple[KVStore, RotationService, FakeClock], tmp_path: Path, root: TokenInfo
) -> None:
    kv, rotation, clock = stack
    vals = {p: _value() for p in ("app/db", "app/nopolicy", "app/denied", "app/old")}
    for path, value in vals.items():
        await kv.put(path, {"password": value})
    await kv.put("app/old", {"password": _value()})  # the planted app/old value is now previous
    for path in ("app/db", "app/denied", "app/old"):
        await rotation.set_policy(path, POLICY, by=root)
    leak_dir = tmp_path / "leak"
    leak_dir.mkdir()
    (leak_dir / "env.txt").write_text("".join(f"X={v}\n" for v in vals.values()))

    findings = await _scan(kv, clock, leak_dir)
    assert leaked_current(findings) == {"app/db": 1, "app/nopolicy": 1, "app/denied": 1}
    out = io.StringIO()
    audit = AuditBroker([StdoutSink(out)], AuditHasher(b"k" * 32))
    outcomes = await rotate_leaks(
        findings,
        scan_id="scan-1",
        requester=_requester({"app/db", "app/nopolicy", "app/old"}),
        rotator=rotation,
        audit=audit,
        now=clock.now,
    )
    await audit.close()
    got = {o.path: (o.outcome, o.version, o.note) for o in outcomes}
    assert got == {
        "app/db": ("rotated", 2, ""),
        "app/nopolicy": ("no-policy", None, "leaked, no rotation policy"),
        "app/denied": ("denied", None, "needs the rotate capability on rotation/app/denied"),
    }
    meta = await kv.read_metadata("app/db")
    assert meta.current_version == 2 and version_status(meta, 1) == "previous"
    assert (await kv.get("app/db")).data["password"] != vals["app/db"]
    assert (await kv.read_metadata("app/denied")).current_version == 1  # untouched
    assert (await kv.read_metadata("app/old")).current_version == 2  # previous leak: no rotation
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    leak_records = [r for r in records if r["operation"] == "scan.rotate_leaked"]
    assert {(r["path"], r["extra"]["outcome"]) for r in leak_records} == {
        ("rotation/app/db", "rotated"),
        ("rotation/app/nopolicy", "no-policy"),
        ("rotation/app/denied", "denied"),
    }
    assert all(r["accessor"] == "acc-1" and r["request_id"] == "scan-1" for r in leak_records)
    text = out.getvalue() + json.dumps([o.to_json() for o in outcomes])
    assert not any(v in text for v in vals.values())


async def test_without_a_rotation_service_nothing_changes(
    stack: tuple[KVStore, RotationService, FakeClock], tmp_path: Path
) -> None:
    kv, _rotation, clock = stack
    value = _value()
    await kv.put("app/db", {"password": value})
    (tmp_path / "f.txt").write_text(f"pw={value}\n")
    findings = await _scan(kv, clock, tmp_path)
    outcomes = await rotate_leaks(
        findings,
        scan_id="s",
        requester=_requester({"app/db"}),
        rotator=None,
        audit=None,
        now=clock.now,
    )
    assert [(o.outcome, o.note) for o in outcomes] == [
        ("unavailable", "rotation is not enabled on this server")
    ]
    assert (await kv.read_metadata("app/db")).current_version == 1


async def test_policy_on_leak_rotate_needs_no_request(
    stack: tuple[KVStore, RotationService, FakeClock], tmp_path: Path, root: TokenInfo
) -> None:
    kv, rotation, clock = stack
    vals = {p: _value() for p in ("app/auto", "app/report")}
    for path, value in vals.items():
        await kv.put(path, {"password": value})
    await rotation.set_policy("app/auto", {**POLICY, "on_leak": "rotate"}, by=root)
    await rotation.set_policy("app/report", POLICY, by=root)  # on_leak defaults to "report"
    (tmp_path / "f.txt").write_text("".join(f"{v}\n" for v in vals.values()))
    findings = await _scan(kv, clock, tmp_path)
    # a periodic scan: nobody asked, only the policy decides
    outcomes = await rotate_leaks(
        findings, scan_id="p", requester=None, rotator=rotation, audit=None, now=clock.now
    )
    assert [(o.path, o.outcome, o.version, o.by) for o in outcomes] == [
        ("app/auto", "rotated", 2, "policy")
    ]
    assert (await kv.read_metadata("app/report")).current_version == 1
    # rescan: app/auto's leaked v1 is now previous (nothing to do); a requester without the
    # capability is refused app/report
    findings = await _scan(kv, clock, tmp_path)
    outcomes = await rotate_leaks(
        findings,
        scan_id="q",
        requester=_requester(set()),
        rotator=rotation,
        audit=None,
        now=clock.now,
    )
    assert [(o.path, o.outcome, o.by) for o in outcomes] == [("app/report", "denied", "request")]


def test_on_leak_is_validated() -> None:
    from vaultside.errors import InvalidRequestError
    from vaultside.rotation.policy import parse_policy

    assert parse_policy({**POLICY, "on_leak": "rotate"}).on_leak == "rotate"
    assert parse_policy(POLICY).to_json()["on_leak"] == "report"
    with pytest.raises(InvalidRequestError) as err:
        parse_policy({**POLICY, "on_leak": "delete"})
    assert any(d.startswith("on_leak:") for d in err.value.details)
