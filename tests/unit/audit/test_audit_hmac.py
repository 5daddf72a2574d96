"""AuditHasher, key files and event redaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pytest

from vaultside.audit.events import AuditEvent
from vaultside.audit.hmac import AuditHasher, load_key, load_or_create_key
from vaultside.errors import InternalError, NotFoundError

from .conftest import make_event


def test_hash_format_and_reproducible() -> None:
    key = os.urandom(32)
    h = AuditHasher(key)
    expected = "hmac-sha256:" + hmac.new(key, b"abc", hashlib.sha256).hexdigest()
    assert h.hash("abc") == expected == AuditHasher(key).hash("abc")
    assert h.hash("abc") != AuditHasher(os.urandom(32)).hash("abc")
    assert key.hex() not in repr(h)
    with pytest.raises(InternalError):
        AuditHasher(b"short")


def test_key_file_created_0600_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key == load_key(path)
    assert [p.name for p in tmp_path.iterdir()] == ["audit.key"]  # no temp files left


def test_key_file_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_key(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_text("not hex")
    with pytest.raises(InternalError):
        load_key(bad)
    short = tmp_path / "short"
    short.write_text("00" * 8)
    with pytest.raises(InternalError):
        load_key(short)
    with pytest.raises(InternalError):
        load_or_create_key(tmp_path / "no-such-dir" / "k")


def test_record_hashes_sensitive_values(hasher: AuditHasher, planted: str) -> None:
    ev = make_event(1, token=planted)
    ev2 = AuditEvent(**{**_fields(ev), "extra": {"route": "r", "token": planted, "n": "3"}})
    for event in (ev, ev2):
        rec = event.to_record(hasher)
        text = json.dumps(rec)
        assert planted not in text
        assert rec["extra"]["token"] == hasher.hash(planted)  # type: ignore[index]
    rec2 = ev2.to_record(hasher)
    assert rec2["extra"] == {"route": "r", "token": hasher.hash(planted), "n": "3"}
    assert rec2["time"] == "2023-11-14T22:13:21.000000Z"
    assert rec2["policies"] == ["app", "default"]


def _fields(ev: AuditEvent) -> dict[str, object]:
    return {name: getattr(ev, name) for name in AuditEvent.__dataclass_fields__}
