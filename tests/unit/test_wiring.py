"""The composition root refuses configurations that could only fail later."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultside.audit.sinks import FileSink, StdoutSink
from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.wiring import build_audit_sinks, build_seal, postgres_dsn


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
