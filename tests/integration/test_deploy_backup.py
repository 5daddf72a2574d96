"""Backup and restore as docs/operations.md describes it, against a running server."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

from .services.vaultside_server import VaultsideServerFactory
from .stack import api
from .test_deploy_support import unavailable

KEY_FILES = ("vaultside.key", "audit-hmac.key")


def test_online_backup_restores_into_a_fresh_data_dir(
    vaultside_server: VaultsideServerFactory, tmp_path: Path
) -> None:
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        unavailable("sqlite3 CLI not installed (apt-get install sqlite3)")
    src = vaultside_server()
    first, second = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    api(src, "PUT", "secrets/app/db", {"data": {"password": first}})
    api(src, "PUT", "secrets/app/db", {"data": {"password": second}})

    # Online: SQLite's backup API while the server runs; key files copied apart.
    data_backup, key_backup = tmp_path / "data", tmp_path / "keys"
    data_backup.mkdir()
    key_backup.mkdir(mode=0o700)
    db = src.data_dir / "vaultside.db"
    subprocess.run([sqlite3, str(db), f".backup {data_backup / 'vaultside.db'}"], check=True)
    for name in KEY_FILES:
        shutil.copy2(src.data_dir / name, key_backup / name)
    api(src, "PUT", "secrets/app/db", {"data": {"password": "after-backup"}})
    src.stop()
    # SECURITY: the data backup is ciphertext only.
    raw = (data_backup / "vaultside.db").read_bytes()
    assert first.encode() not in raw and second.encode() not in raw

    dst = vaultside_server()  # a fresh server with its own, different key
    dst.stop()
    for child in dst.data_dir.iterdir():
        child.unlink()
    shutil.copy2(data_backup / "vaultside.db", dst.data_dir / "vaultside.db")
    for name in KEY_FILES:
        shutil.copy2(key_backup / name, dst.data_dir / name)
        (dst.data_dir / name).chmod(0o600)
    dst.start()

    got = api(dst, "GET", "secrets/app/db")
    assert got["data"] == {"password": second}
    assert got["metadata"]["version"] == 2
    old = api(dst, "GET", "secrets/app/db?version=1")
    assert old["data"] == {"password": first}
