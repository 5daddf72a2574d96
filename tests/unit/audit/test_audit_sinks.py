"""FileSink: 0600, chained, continues after reopen, batches, fails closed; broker; stdout."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
from pathlib import Path

import pytest

from vaultside.audit.chain import GENESIS, verify_file
from vaultside.audit.hmac import AuditHasher
from vaultside.audit.sinks import AuditBroker, AuditSink, FileSink, StdoutSink
from vaultside.audit.verify import verify_chain
from vaultside.errors import UpstreamUnavailableError

from .conftest import make_event, write_from_two_processes


async def test_file_sink_chain_mode_and_reopen(tmp_path: Path, hasher: AuditHasher) -> None:
    path = tmp_path / "audit.log"
    sink = FileSink(path)
    broker = AuditBroker([sink], hasher)
    for i in range(3):
        await broker.log(make_event(i))
    await broker.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = json.loads(path.read_bytes().splitlines()[0])
    assert first["prev"] == GENESIS and first["request_id"] == "req-0"
    again = FileSink(path)
    await AuditBroker([again], hasher).log(make_event(3))
    await again.close()
    result = verify_file(path)
    assert result.ok and result.records == 4, result.problems


async def test_existing_loose_file_is_tightened(tmp_path: Path, hasher: AuditHasher) -> None:
    path = tmp_path / "audit.log"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    sink = FileSink(path)
    await sink.write({"a": "b"})
    await sink.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_reopen_after_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    sink = FileSink(path)
    await sink.write({"n": 1})
    await sink.close()
    with path.open("ab") as f:
        f.write(b'{"n":2,"pre')  # a crash mid-line
    sink = FileSink(path)
    await sink.write({"n": 3})
    await sink.close()
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[-1])["n"] == 3  # starts on its own line
    result = verify_file(path)
    assert not result.ok
    assert result.problems[0].startswith("line 2: not a valid audit record")


async def test_concurrent_writes_are_batched_in_chain_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    sink = FileSink(path)
    writes: list[int] = []
    real_batch = sink._write_batch

    def counting_batch(records: list[dict[str, object]]) -> None:
        writes.append(len(records))
        real_batch(records)

    sink._write_batch = counting_batch  # type: ignore[method-assign]
    await asyncio.gather(*(sink.write({"i": i}) for i in range(200)))
    await sink.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 200
    assert sorted(json.loads(x)["i"] for x in lines) == list(range(200))
    assert verify_file(path).ok
    assert sum(writes) == 200
    assert len(writes) < 20  # many records per write


async def test_each_write_returns_after_its_record_is_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    sink = FileSink(path)

    async def write_and_check(i: int) -> None:
        await sink.write({"i": i})
        assert f'"i":{i},'.encode() in path.read_bytes()

    await asyncio.gather(*(write_and_check(i) for i in range(50)))
    await sink.close()


async def test_fail_closed_when_write_fails(hasher: AuditHasher) -> None:
    # /dev/full accepts open() and refuses every write with ENOSPC.
    sink = FileSink(Path("/dev/full"))
    with pytest.raises(UpstreamUnavailableError):
        await sink.write({"a": 1})
    results = await asyncio.gather(
        *(sink.write({"a": i}) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, UpstreamUnavailableError) for r in results)
    broker = AuditBroker([sink], hasher)
    with pytest.raises(UpstreamUnavailableError, match="audit log unavailable"):
        await broker.log(make_event())


async def test_fail_closed_when_file_cannot_be_opened(tmp_path: Path, hasher: AuditHasher) -> None:
    target = tmp_path / "dir-not-file"
    target.mkdir()
    broker = AuditBroker([FileSink(target)], hasher)
    with pytest.raises(UpstreamUnavailableError, match="audit log unavailable"):
        await broker.log(make_event())
    # Recovers once the problem is fixed.
    target.rmdir()
    await broker.log(make_event())
    await broker.close()
    assert verify_file(target).records == 1


async def test_failed_batch_leaves_chain_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.log"
    sink = FileSink(path)
    await sink.write({"n": 1})
    assert sink._fd is not None
    target, real_write, calls = sink._fd, os.write, []

    def half_then_enospc(fd: int, data: bytes | memoryview) -> int:
        if fd == target and not calls:
            calls.append(1)
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(UpstreamUnavailableError):
        await sink.write({"n": 2})
    assert calls
    await sink.write({"n": 3})
    await sink.close()
    result = verify_file(path)
    assert result.ok and result.records == 2, result.problems
    assert [json.loads(x)["n"] for x in path.read_bytes().splitlines()] == [1, 3]


async def test_broker_ok_if_any_sink_accepts(tmp_path: Path, hasher: AuditHasher) -> None:
    stream = io.StringIO()
    broker = AuditBroker([FileSink(Path("/dev/full")), StdoutSink(stream)], hasher)
    await broker.log(make_event(7))
    assert json.loads(stream.getvalue())["request_id"] == "req-7"
    with pytest.raises(UpstreamUnavailableError):
        await AuditBroker([], hasher).log(make_event())


async def test_no_secret_in_file(tmp_path: Path, hasher: AuditHasher, planted: str) -> None:
    path = tmp_path / "audit.log"
    broker = AuditBroker([FileSink(path)], hasher)
    await broker.log(make_event(1, token=planted, value=planted))
    await broker.close()
    data = path.read_bytes()
    assert planted.encode() not in data
    assert planted[3:20].encode() not in data
    assert hasher.hash(planted).encode() in data


def test_sinks_satisfy_protocol() -> None:
    sinks: list[AuditSink] = [FileSink(Path("x")), StdoutSink()]
    assert len(sinks) == 2


async def test_two_writers_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    # Two sinks = two open file descriptions, as two server workers would have.
    path = tmp_path / "audit.log"
    a, b = FileSink(path), FileSink(path)
    await asyncio.gather(
        *(a.write({"w": "a", "i": i}) for i in range(100)),
        *(b.write({"w": "b", "i": i}) for i in range(100)),
    )
    for i in range(20):
        await (a if i % 2 else b).write({"w": "x", "i": i})
    await a.close()
    await b.close()
    result = verify_file(path)
    assert result.ok and result.records == 220, result.problems


def test_two_processes_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_from_two_processes(path, 300)
    result = verify_file(path)
    assert result.ok and result.records == 1800, result.problems[:5]


async def test_external_rotation_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    sink = FileSink(path)
    await sink.write({"n": 1})
    path.rename(tmp_path / "audit.log.1")
    await sink.write({"n": 2})
    await sink.close()
    first = json.loads((tmp_path / "audit.log.1").read_bytes())
    second = json.loads(path.read_bytes())
    assert (second["prev"], second["seq"]) == (first["hash"], 2)
    result = verify_chain(path)
    assert result.ok and result.records == 2, result.problems
