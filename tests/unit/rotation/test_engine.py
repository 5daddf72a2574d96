"""The four-step rotation: promotion, rollback on failure, journal recovery after a crash."""

from __future__ import annotations

import asyncio
import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest

from vaultside.auth.records import TokenInfo
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.errors import ConflictError, NotFoundError
from vaultside.kv.store import KVStore
from vaultside.rotation.catalog import CommandEntry, TargetCatalog
from vaultside.rotation.journal import JournalEntry
from vaultside.rotation.service import RotationService

from .conftest import START

SCRIPT = """#!/bin/sh
cat > "{dir}/stdin.$VAULTSIDE_ROTATION_STEP"
echo "$VAULTSIDE_ROTATION_STEP" >> "{dir}/steps"
if [ "$VAULTSIDE_ROTATION_STEP" = "$(cat {dir}/fail 2>/dev/null)" ]; then exit 3; fi
exit 0
"""


@pytest.fixture
def program(tmp_path: Path, service: RotationService) -> Path:
    """A script declared (pinned) in the service's catalog as command target ``prog``."""
    d = tmp_path / "prog"
    d.mkdir()
    script = d / "target.sh"
    script.write_text(SCRIPT.format(dir=d))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    digest = hashlib.sha256(script.read_bytes()).hexdigest()
    entry = CommandEntry("prog", (str(script),), digest)
    service.engine.targets.catalog = TargetCatalog({"prog": entry})
    return d


def steps(program: Path) -> list[str]:
    f = program / "steps"
    return f.read_text().split() if f.exists() else []


def kv_policy(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "every": "1h",
        "generator": {"kind": "password", "length": 20},
        "target": {"kind": "kv"},
    }
    doc.update(kw)
    return doc


def command_policy(program: Path, **kw: Any) -> dict[str, Any]:
    assert (program / "target.sh").exists()
    return kv_policy(target={"kind": "command", "name": "prog"}, **kw)


async def test_kv_rotation_promotes_and_keeps_other_fields(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    await kv.put("app/db", {"username": "app", "password": "old"})
    await service.set_policy("app/db", kv_policy(jitter="10m"), by=root)
    entry = await service.rotate_now("app/db")
    assert entry.result == "ok" and entry.version == 2
    current = await kv.get("app/db")
    assert current.data["username"] == "app"
    assert current.data["password"] != "old" and len(current.data["password"]) == 20
    assert (await kv.get("app/db", version=1)).data["password"] == "old"  # previous readable
    state = await service.store.get_state("app/db")
    assert state.version == 2 and state.previous_version == 1 and state.last_result == "ok"
    assert state.next_run == START + 3600 + 300  # jitter 10 min x 0.5
    assert await service.engine.journal.paths() == []
    [hist] = await service.history("app/db")
    assert hist.result == "ok" and hist.trigger == "manual"


async def test_first_rotation_creates_the_secret(
    service: RotationService, kv: KVStore, root: TokenInfo
) -> None:
    await service.set_policy(
        "new/secret", kv_policy(generator={"kind": "token", "prefix": "t_"}), by=root
    )
    entry = await service.rotate_now("new/secret")
    assert entry.version == 1
    assert (await kv.get("new/secret")).data["token"].startswith("t_")


@pytest.mark.parametrize("failing", ["set", "test"])
async def test_failure_rolls_back_and_plans_retry(
    service: RotationService,
    kv: KVStore,
    program: Path,
    clock: FakeClock,
    failing: str,
    root: TokenInfo,
) -> None:
    await kv.put("svc/api", {"password": "old"})
    (program / "fail").write_text(failing)
    await service.set_policy("svc/api", command_policy(program, backoff="30s"), by=root)
    entry = await service.rotate_now("svc/api")
    assert entry.result == "failed" and entry.step == failing
    assert entry.error == f"{failing} command exited with status 3"
    expected = ["set", "rollback"] if failing == "set" else ["set", "test", "rollback"]
    assert steps(program) == expected
    current = await kv.get("svc/api")
    assert current.meta.version == 1 and current.data["password"] == "old"
    assert await service.engine.journal.paths() == []
    state = await service.store.get_state("svc/api")
    assert state.failures == 1 and state.next_run == START + 30
    metric = service.engine.metrics.rotations.labels("command", "failed")._value.get()
    assert metric == 1
    # The second failure backs off twice as long; after max_attempts the normal schedule resumes.
    clock._now += 30
    await service.rotate_now("svc/api")
    state = await service.store.get_state("svc/api")
    assert state.failures == 2 and state.next_run == START + 30 + 60
    await service.rotate_now("svc/api")
    state = await service.store.get_state("svc/api")
    assert state.failures == 0 and state.next_run == START + 30 + 3600


async def test_command_receives_the_pending_value_on_stdin(
    service: RotationService, kv: KVStore, program: Path, root: TokenInfo
) -> None:
    await kv.put("svc/api", {"password": "old"})
    await service.set_policy("svc/api", command_policy(program), by=root)
    assert (await service.rotate_now("svc/api")).result == "ok"
    assert steps(program) == ["set", "test", "finish"]
    import json

    body = json.loads((program / "stdin.set").read_text())
    assert body["current"] == {"password": "old"}
    assert body["pending"] == dict((await kv.get("svc/api")).data)


async def test_concurrent_rotations_of_one_secret_conflict(
    service: RotationService, kv: KVStore, root: TokenInfo
) -> None:
    await kv.put("app/db", {"password": "old"})
    await service.set_policy("app/db", kv_policy(), by=root)
    results = await asyncio.gather(
        service.rotate_now("app/db"), service.rotate_now("app/db"), return_exceptions=True
    )
    assert sum(isinstance(r, ConflictError) for r in results) == 1
    assert (await kv.read_metadata("app/db")).current_version == 2


async def test_lease_held_by_another_process_conflicts(
    service: RotationService, kv: KVStore, root: TokenInfo, barrier: Barrier
) -> None:
    await service.set_policy("app/db", kv_policy(), by=root)
    assert await barrier.try_lock("rotation/lock/app/db", "other-process", 60)  # the full name
    with pytest.raises(ConflictError, match="another process"):
        await service.rotate_now("app/db")


async def journal_crash(
    service: RotationService, kv: KVStore, step: str, program: Path, root: TokenInfo
) -> dict[str, str]:
    """Journal a rotation at ``step`` as a crashed process would have left it."""
    await kv.put("svc/api", {"password": "old"})
    policy = await service.set_policy("svc/api", command_policy(program), by=root)
    pending = {"password": "new-value-from-crashed-run"}
    entry = JournalEntry("svc/api", "run1", step, 1, START, "schedule", pending)
    entry.current, entry.policy = {"password": "old"}, policy.to_json()
    await service.engine.journal.write(entry)
    return pending


@pytest.mark.parametrize("step", ["pending", "set", "test"])
async def test_recover_rolls_back_before_finish(
    service: RotationService, kv: KVStore, program: Path, step: str, root: TokenInfo
) -> None:
    await journal_crash(service, kv, step, program, root)
    assert await service.engine.recover() == 1
    assert steps(program) == ["rollback"]
    assert (await kv.get("svc/api")).data == {"password": "old"}
    assert await service.engine.journal.paths() == []
    [hist] = await service.history("svc/api")
    assert hist.result == "failed" and hist.extra == {"recovered": "rolled back"}


async def test_recover_completes_a_journaled_finish(
    service: RotationService, kv: KVStore, program: Path, root: TokenInfo
) -> None:
    pending = await journal_crash(service, kv, "finish", program, root)
    assert await service.engine.recover() == 1
    current = await kv.get("svc/api")
    assert current.meta.version == 2 and dict(current.data) == pending
    assert steps(program) == ["finish"]
    assert await service.engine.journal.paths() == []
    # Recovering again is a no-op; a finish whose put already landed is not written twice.
    assert await service.engine.recover() == 0


async def test_recover_after_the_put_landed(
    service: RotationService, kv: KVStore, program: Path, root: TokenInfo
) -> None:
    pending = await journal_crash(service, kv, "finish", program, root)
    await kv.put("svc/api", pending, cas=1)  # crash after the put, before the journal discard
    assert await service.engine.recover() == 1
    assert (await kv.read_metadata("svc/api")).current_version == 2


async def test_recover_rolls_back_when_the_store_moved_on(
    service: RotationService, kv: KVStore, program: Path, root: TokenInfo
) -> None:
    await journal_crash(service, kv, "finish", program, root)
    await kv.put("svc/api", {"password": "written-by-an-operator"})
    await service.engine.recover()
    assert steps(program) == ["rollback"]
    assert (await kv.get("svc/api")).data == {"password": "written-by-an-operator"}


async def test_failed_rollback_keeps_the_journal_and_blocks_new_rotations(
    service: RotationService, kv: KVStore, program: Path, root: TokenInfo
) -> None:
    await journal_crash(service, kv, "set", program, root)
    (program / "fail").write_text("rollback")
    await service.engine.recover()
    assert await service.engine.journal.paths() == ["svc/api"]
    with pytest.raises(ConflictError, match="could not be rolled back"):
        await service.rotate_now("svc/api")
    (program / "fail").write_text("")
    assert (await service.rotate_now("svc/api")).result == "ok"


async def test_unknown_policy_is_not_found(service: RotationService) -> None:
    with pytest.raises(NotFoundError):
        await service.rotate_now("nope")


async def test_a_crashed_holders_lock_delays_recovery_but_the_leader_retries(
    service: RotationService,
    kv: KVStore,
    program: Path,
    root: TokenInfo,
    barrier: Barrier,
) -> None:
    """A restarted server can take the scheduler lease while the dead process's path lock
    still lives (both leases were renewed at different moments): recovery of that path is put
    off, and the leader tries it again on its next ticks instead of leaving the rotation
    half done until the path's next scheduled run."""
    await journal_crash(service, kv, "set", program, root)
    # SQLite's leases run on real time: the dead process's lock has 0.3 s left.
    assert await barrier.try_lock("rotation/lock/svc/api", "dead-process", 0.3)
    await service.scheduler.tick()  # leader now; the path's lock is still the dead one's
    assert service.scheduler.leader
    assert await service.engine.journal.paths() == ["svc/api"]
    assert steps(program) == []
    await asyncio.sleep(0.4)  # the dead process's lock expires
    await service.scheduler.tick()
    assert steps(program) == ["rollback"]
    assert await service.engine.journal.paths() == []
    assert (await kv.get("svc/api")).data == {"password": "old"}
