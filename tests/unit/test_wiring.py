"""The composition root refuses configurations that could only fail later."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.stores import keyed_settings
from vaultside.audit.sinks import FileSink, StdoutSink
from vaultside.auth.tidy import TokenTidier
from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.wiring.audit import build_audit_sinks
from vaultside.wiring.seal import build_seal
from vaultside.wiring.server import build_services
from vaultside.wiring.storage import postgres_dsn


def test_audit_sinks(tmp_path: Path) -> None:
    sinks = build_audit_sinks(Settings(data_dir=tmp_path))
    assert [type(s) for s in sinks] == [FileSink]
    both = build_audit_sinks(Settings(data_dir=tmp_path, audit={"stdout": True}))
    assert [type(s) for s in both] == [FileSink, StdoutSink]
    with pytest.raises(InvalidRequestError, match="no audit sink"):
        build_audit_sinks(Settings(data_dir=tmp_path, audit={"file": None}))
    with pytest.raises(InvalidRequestError, match="no audit sink"):
        build_audit_sinks(Settings(data_dir=tmp_path, audit={"file": ""}))
    (tmp_path / "dir").mkdir()
    with pytest.raises(InvalidRequestError, match="is a directory"):
        build_audit_sinks(Settings(data_dir=tmp_path, audit={"file": "dir"}))


def test_seal_and_storage_errors_are_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="passphrase_file"):
        build_seal(Settings(data_dir=tmp_path, seal={"kind": "passphrase"}))
    with pytest.raises(InvalidRequestError, match="postgres_dsn"):
        postgres_dsn(Settings(data_dir=tmp_path, storage={"kind": "postgres"}))


class _Component:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.started = 0
        self.closed = 0

    async def start(self) -> None:
        self.started += 1
        if self.fail:
            raise ConnectionError("upstream down")

    async def close(self) -> None:
        self.closed += 1


async def test_one_failing_component_does_not_stop_the_others(tmp_path: Path) -> None:
    services = build_services(keyed_settings(tmp_path))
    broken, fine = _Component(fail=True), _Component(fail=False)
    services.components[:0] = [broken, fine]
    await services.open()
    await services.barrier.unseal()
    await services.start_components()
    await services.start_components()  # idempotent
    assert (broken.started, fine.started) == (1, 1)
    await services.close()
    assert (broken.closed, fine.closed) == (1, 1)


async def test_audit_fsync_setting_reaches_the_file_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    synced: list[int] = []

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    for fsync, expected in ((False, 0), (True, 1)):
        synced.clear()
        settings = Settings(data_dir=tmp_path, audit={"file": f"audit-{fsync}.log", "fsync": fsync})
        (sink,) = build_audit_sinks(settings)
        await sink.write({"type": "test"})
        await sink.close()
        assert len(synced) == expected


def test_token_tidier_is_a_component_unless_disabled(tmp_path: Path) -> None:
    services = build_services(keyed_settings(tmp_path, auth={"token_tidy_interval": 30}))
    (tidier,) = [c for c in services.components if isinstance(c, TokenTidier)]
    assert tidier.interval == 30 and tidier.tokens is services.tokens
    assert tidier.clock is services.clock
    off = build_services(Settings(data_dir=tmp_path, auth={"token_tidy_interval": 0}))
    assert not [c for c in off.components if isinstance(c, TokenTidier)]


def test_declared_rotation_targets_are_checked_at_start(tmp_path: Path) -> None:
    program = tmp_path / "hook.sh"
    program.write_text("#!/bin/sh\nexit 0\n")
    digest = hashlib.sha256(program.read_bytes()).hexdigest()
    good = {"kind": "command", "argv": [str(program)], "sha256": digest}
    services = build_services(keyed_settings(tmp_path, rotation={"targets": {"hook": good}}))
    assert services.rotation is not None
    assert services.rotation.engine.targets.catalog.names() == ["hook"]
    bad = {**good, "sha256": "0" * 64}
    with pytest.raises(InvalidRequestError, match=r"'hook'.*does not match its pinned sha256"):
        build_services(Settings(data_dir=tmp_path, rotation={"targets": {"hook": bad}}))
    remote = {"kind": "webhook", "url": "http://192.0.2.1/x", "allow_http": True}
    with pytest.raises(InvalidRequestError, match="only to loopback"):
        build_services(Settings(data_dir=tmp_path, rotation={"targets": {"h": remote}}))
