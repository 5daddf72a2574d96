"""FileSeal, PassphraseSeal and their init functions."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from vaultside.crypto.seal import (
    DEFAULT_MEMORY_KIB,
    FileSeal,
    PassphraseSeal,
    init_key_file,
    init_passphrase_salt,
)
from vaultside.errors import ConflictError, SealedError

FAST = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1}


async def test_init_key_file(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    init_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = await FileSeal(path).root_key()
    assert len(key) == 32
    assert key == path.read_bytes()
    with pytest.raises(ConflictError):
        init_key_file(path)
    assert path.read_bytes() == key


async def test_file_seal_refuses_public_key(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    init_key_file(path)
    path.chmod(0o644)
    with pytest.raises(SealedError, match=r"group/others \(mode 0644\).*chmod 600"):
        await FileSeal(path).root_key()
    path.chmod(0o640)
    with pytest.raises(SealedError):
        await FileSeal(path).root_key()


async def test_file_seal_missing_or_wrong_size(tmp_path: Path) -> None:
    with pytest.raises(SealedError, match="does not exist"):
        await FileSeal(tmp_path / "nope").root_key()
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 16)
    short.chmod(0o600)
    with pytest.raises(SealedError, match="16 bytes"):
        await FileSeal(short).root_key()


def test_seal_reprs_hide_nothing_secret(tmp_path: Path) -> None:
    assert "root.key" in repr(FileSeal(tmp_path / "root.key"))
    assert FileSeal(tmp_path).kind == "file"
    assert PassphraseSeal(tmp_path / "p", tmp_path / "s").kind == "passphrase"


def _passphrase(tmp_path: Path, text: bytes, name: str = "pass") -> Path:
    p = tmp_path / name
    p.write_bytes(text)
    p.chmod(0o600)
    return p


async def test_passphrase_seal_is_deterministic(tmp_path: Path) -> None:
    salt = tmp_path / "salt.json"
    init_passphrase_salt(salt, **FAST)
    a = await PassphraseSeal(_passphrase(tmp_path, b"correct horse\n"), salt).root_key()
    b = await PassphraseSeal(_passphrase(tmp_path, b"correct horse", "p2"), salt).root_key()
    c = await PassphraseSeal(_passphrase(tmp_path, b"correct horsf", "p3"), salt).root_key()
    assert len(a) == 32
    assert a == b
    assert a != c
    other_salt = tmp_path / "salt2.json"
    init_passphrase_salt(other_salt, **FAST)
    d = await PassphraseSeal(tmp_path / "pass", other_salt).root_key()
    assert d != a


def test_salt_file_defaults_are_memory_hard(tmp_path: Path) -> None:
    salt = tmp_path / "salt.json"
    init_passphrase_salt(salt)
    doc = json.loads(salt.read_text())
    assert doc["kdf"] == "argon2id"
    assert doc["memory_kib"] == DEFAULT_MEMORY_KIB >= 64 * 1024
    assert stat.S_IMODE(salt.stat().st_mode) == 0o600
    with pytest.raises(ConflictError):
        init_passphrase_salt(salt)


async def test_passphrase_seal_errors(tmp_path: Path) -> None:
    salt = tmp_path / "salt.json"
    with pytest.raises(SealedError, match=r"salt file .* does not exist"):
        await PassphraseSeal(_passphrase(tmp_path, b"pw"), salt).root_key()
    init_passphrase_salt(salt, **FAST)
    with pytest.raises(SealedError, match=r"passphrase file .* does not exist"):
        await PassphraseSeal(tmp_path / "missing", salt).root_key()
    with pytest.raises(SealedError, match="empty"):
        await PassphraseSeal(_passphrase(tmp_path, b"\n", "empty"), salt).root_key()
    public = _passphrase(tmp_path, b"pw", "public")
    public.chmod(0o604)
    with pytest.raises(SealedError, match="group/others"):
        await PassphraseSeal(public, salt).root_key()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SealedError, match="malformed"):
        await PassphraseSeal(tmp_path / "pass", bad).root_key()
